; containers.asm — record slots, list elements and dict values own counts
; too, exactly like the items of CPython's tuples, lists and dicts.
    new r1, 0               ; the object we watch
    new r2, 3               ; a record
    store r2, 0, r1
    store r2, 2, r1
    refcount r0, r1
    print r0                ; 3: r1 and two slots
    list r3
    push r3, r1
    push r3, r1
    refcount r0, r1
    print r0                ; 5
    dict r4
    str r5, "key"
    store r4, r5, r1        ; the dict value owns a count (the key is a copy)
    refcount r0, r1
    print r0                ; 6
    store r2, 0, r2         ; overwriting a slot releases what it held
    refcount r0, r1
    print r0                ; 5
    pop r6, r3              ; the popped element's count moves to r6
    refcount r0, r1
    print r0                ; 5
    del r6
    del r3                  ; freeing the list releases its element
    refcount r0, r1
    print r0                ; 3
    print r2, r4            ; ((...), nil, ()) {"key": ()}
