; every error in the file is reported, not just the first
    ad r1, r2, 1
    li r1
    jmp nowhere
    call r0, nofunc
    new r1, 70000
    li r300, 1
    str r1, "\q"
    mov 1, r1
