; args: --max-heap 64K
; err_oom.asm — --max-heap caps the heap; allocating past it is a runtime
; error ("out of memory") and the heap stays consistent.
    list r0
grow:
    new r1, 4
    push r0, r1
    jmp grow
