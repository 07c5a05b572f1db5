; gc_cycle.asm — a cycle that refcounting alone can never free: each
; record keeps the other at count 1 after the registers let go. `gc`
; finds the unreachable pair by trial deletion and returns how many tracked
; objects it freed, like CPython's gc.collect().
    gcdisable               ; no automatic collection in this lesson
    new r1, 1
    new r2, 1
    store r1, 0, r2         ; r1 -> r2
    store r2, 0, r1         ; r2 -> r1
    refcount r0, r1
    print r0                ; 2: the register and r2's slot
    del r1
    del r2                  ; both still at count 1: leaked to refcounting
    gc r3
    print r3                ; 2: the collector freed the pair
    gc r3
    print r3                ; 0: nothing left
    ; a self-referencing list holding a string: the string is freed with
    ; it but not counted (strings are not tracked)
    list r4
    push r4, r4
    str r5, "inside"
    push r4, r5
    del r5
    del r4
    gc r6
    print r6                ; 1
