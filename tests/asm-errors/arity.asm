; call arity is checked when assembling
    li r1, 1
    call r0, two, r1
    call r0, two, r1, r1, r1
.func two 2
    ret r0
.end
