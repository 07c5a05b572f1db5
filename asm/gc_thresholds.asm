; args: --gc-log
; gc_thresholds.asm — automatic collection: when count 0 passes threshold 0
; a collection runs, at the same instruction on every run. Thresholds can
; change at run time; --gc-log prints one line per collection (times vary).
    gcthreshold 100, 2, 2
    li r0, 0
churn:
    list r1                 ; a self-referencing list, dropped at once:
    push r1, r1             ; only the collector can free it
    add r0, r0, 1
    lt r2, r0, 1000
    jnz r2, churn
    del r1
    gccount r3, 0
    gccount r4, 1
    gccount r5, 2
    print r3, r4, r5
    gcthreshold 0, 10, 10   ; threshold 0 turns automatic collection off
    li r0, 0
more:
    list r1
    push r1, r1
    add r0, r0, 1
    lt r2, r0, 500
    jnz r2, more
    del r1
    gccount r3, 0
    print r3                ; 500 + the survivors of earlier collections
    gc r6
    print r6                ; everything still uncollected
