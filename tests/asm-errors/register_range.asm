; registers are r0 ... r255
    li r256, 1
    mov r1, r1000
