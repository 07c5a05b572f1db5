; refcount_basics.asm — every register that holds a reference owns one
; count; `mov` adds an owner, overwriting or `del` removes one, and at 0
; the object is freed at once.
    new r1, 2               ; a record with 2 nil slots
    refcount r0, r1
    print r0                ; 1: r1 owns it
    mov r2, r1
    refcount r0, r1
    print r0                ; 2: r1 and r2
    mov r3, r2
    refcount r0, r1
    print r0                ; 3
    li r2, 5                ; overwriting r2 releases its reference
    refcount r0, r1
    print r0                ; 2
    del r3                  ; like Python's `del x`
    refcount r0, r1
    print r0, r3            ; 1 nil
    del r1                  ; 0: freed now (see --stats: freed by rc 1)
