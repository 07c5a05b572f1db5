; mnemonics and registers are lowercase
    LI r1, 2
    add r1, R1, 1
