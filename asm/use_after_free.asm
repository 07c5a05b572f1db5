; use_after_free.asm — `decref` frees at 0 even if owners still hold the
; object, like Py_DECREF. Their references now dangle; using one is caught
; (never undefined behaviour), naming the object and where it was freed.
    new r1, 2
    mov r2, r1              ; two owners, count 2
    decref r1               ; 1
    decref r1               ; 0: freed, though r1 and r2 still refer to it
    print r2                ; use of freed object #1
