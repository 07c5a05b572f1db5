; err_index.asm — negative indexes count from the end, Python style; out of
; range is a runtime error.
    new r1, 3
    li r2, 9
    store r1, -1, r2
    load r3, r1, 2
    print r3, r1            ; 9 (nil, nil, 9)
    load r4, r1, -4         ; out of range
