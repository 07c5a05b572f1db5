; dicts.asm — insertion-ordered dicts with int and string keys compared by
; value; `store` inserts or replaces, `has`, `load`, `delitem`, `len`.
    dict r1
    str r2, "apple"
    li r3, 3
    store r1, r2, r3
    store r1, 7, r3
    str r4, "pear"
    list r5
    store r1, r4, r5
    print r1                ; {"apple": 3, 7: 3, "pear": []}
    str r6, "apple"         ; a different string object, same value
    li r7, 10
    store r1, r6, r7        ; replaces: the position is kept
    print r1                ; {"apple": 10, 7: 3, "pear": []}
    has r8, r1, 7
    has r9, r1, 8
    load r10, r1, r2
    len r11, r1
    print r8, r9, r10, r11  ; 1 0 10 3
    delitem r1, 7
    print r1                ; {"apple": 10, "pear": []}
    load r12, r1, 7         ; a missing key is a runtime error
