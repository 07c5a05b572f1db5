; printing.asm — how values print: records (…), lists […], dicts {…};
; a container met again while it is being printed shows as (...), [...]
; or {...}, as in Python, and any depth prints without host recursion.
    new r1, 3
    li r2, 1
    store r1, 0, r2
    str r3, "a"
    store r1, 2, r3
    print r1                ; (1, nil, "a")
    new r4, 0
    list r5
    dict r6
    print r4, r5, r6        ; () [] {}
    push r5, r5
    print r5                ; [[...]]
    store r6, 1, r6
    store r1, 1, r1
    print r6, r1            ; {1: {...}} (1, (...), "a")
    ; a list nested 5 deep, then one nested 100,000 deep
    list r14
    mov r15, r14
    li r9, 0
nest:
    list r10
    push r15, r10
    mov r15, r10
    add r9, r9, 1
    lt r11, r9, 5
    jnz r11, nest
    print r14               ; [[[[[[]]]]]]
    list r7
    mov r8, r7
    li r9, 0
deeper:
    list r10
    push r8, r10
    mov r8, r10
    add r9, r9, 1
    lt r11, r9, 100_000
    jnz r11, deeper
    len r12, r7
    print r12               ; 1
    del r8
    del r10
    del r1                  ; the three self-referencing containers are
    del r5                  ; now unreachable (r1's string goes with it)
    del r6
    gc r13
    print r13               ; 3
