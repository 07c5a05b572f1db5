; malformed integer literals
    li r1, 0xg1
    li r2, 0b102
    li r3, 1__000
    li r4, _1
    li r5, 12ab
