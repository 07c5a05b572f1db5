; commas, stray tokens, directives
    add r1,, r2, 1
    add r1 r2, 1
    add r1, r2, 1,
    r1: halt
    .fucn f
    li r1, 1 $
