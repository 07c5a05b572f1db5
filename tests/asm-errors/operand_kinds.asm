; a register where an immediate is needed, and the reverse
    li r1, r2
    new r1, r2
    mov r1, 5
    jmp 5
    call r0, "f"
    str r1, 5
    gc r0, r1
