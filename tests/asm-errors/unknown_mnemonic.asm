; a misspelled mnemonic gets a suggestion
    li r1, 2
    ad r1, r1, 3
    lood r2, r1, 0
    frobnicate r1
