; scope_exit.asm — `ret` releases every register of the returning frame
; (its arguments included); the returned value's count moves to the caller.
    new r1, 1
    call r2, keep, r1       ; the argument is retained into keep's r0
    refcount r0, r1
    print r0                ; 2: r1 and the record that keep returned holds it
    call r3, drop, r1
    refcount r0, r1
    print r0                ; 2: drop's registers were released on return
    print r2                ; ((nil))

.func keep 1
    new r1, 1
    store r1, 0, r0         ; a new record holding the argument
    refcount r2, r0
    print r2                ; 3: caller's r1, our r0, the slot
    ret r1                  ; r0 is released; r1's count goes to the caller
.end

.func drop 1
    mov r1, r0
    mov r2, r0
    refcount r3, r0
    print r3                ; 5: the caller's r1, the slot, our r0, r1, r2
.end
