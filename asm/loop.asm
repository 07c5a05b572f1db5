; loop.asm — a counting loop: the sum of 1 .. 1,000,000.
; Labels may share a line with an instruction; `_` groups digits.
; expect: 500000500000
    li r0, 1                ; i
    li r1, 0                ; sum
top: add r1, r1, r0
    add r0, r0, 1
    le r2, r0, 1_000_000
    jnz r2, top
    print r1
