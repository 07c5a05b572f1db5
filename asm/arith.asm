; arith.asm — integers: literal forms, checked arithmetic, Python-style
; floor division and modulo, comparisons.
    li r0, 0x2a             ; hex
    li r1, 0b101            ; binary
    li r2, 1_000_000        ; underscores between digits
    li r3, -7
    print r0, r1, r2, r3    ; 42 5 1000000 -7
    li r4, -9223372036854775808   ; i64::MIN
    li r5, 9223372036854775807    ; i64::MAX
    print r4, r5
    ; div floors and mod takes the divisor's sign, like Python's // and %
    div r6, r3, 2
    mod r7, r3, 2
    print r6, r7            ; -4 1
    li r8, 7
    div r6, r8, -2
    mod r7, r8, -2
    print r6, r7            ; -4 -1
    div r6, r3, -2
    mod r7, r3, -2
    print r6, r7            ; 3 -1
    mul r9, r0, r3
    sub r9, r9, 0x1_0000_0000   ; a wide immediate (does not fit in 32 bits)
    print r9                ; -4294967590
    ; comparisons give 1 or 0
    lt r10, r3, r0
    le r11, r0, 42
    gt r12, r3, 0
    ge r13, r5, r4
    eq r14, r0, 42
    ne r15, r0, r1
    print r10, r11, r12, r13, r14, r15   ; 1 1 0 1 1 1
    ; not: 1 for nil or 0, else 0; an untouched register is nil
    not r16, r20
    not r17, r0
    print r16, r17, r20     ; 1 0 nil
