; wrong operand counts
    li r1
    add r1, r2
    halt r1
    ret r1, r2
    print
