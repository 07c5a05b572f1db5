; args: --check-leaks
; leak_incref.asm — an `incref` never undone keeps an object alive after
; every owner is gone: a leak. --check-leaks lists it with where it was
; allocated (and what it keeps alive), and exits 3.
    new r1, 1
    str r2, "kept alive by the record"
    store r1, 0, r2
    incref r1               ; like Py_INCREF with no matching Py_DECREF
    new r3, 0               ; this one is released normally
    refcount r0, r1
    print r0                ; 2
