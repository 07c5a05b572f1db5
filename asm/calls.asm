; calls.asm — functions with 0 to 3 arguments, forward calls, falling off
; the end (returns nil), `ret` with and without a value.
    call r0, zero
    li r1, 10
    call r2, one, r1
    li r3, 3
    call r4, three, r1, r3, r1
    call r5, nothing, r1
    print r0, r2, r4, r5     ; 7 11 23 nil

.func zero
    li r0, 7
    ret r0
.end

.func one 1
    add r0, r0, 1
    ret r0
.end

.func three 3               ; r0 + r1 + r2
    add r0, r0, r1
    add r0, r0, r2
    ret r0
.end

.func nothing 1
    jz r0, done.early       ; label names may contain dots and underscores
    li r1, 99               ; computed, never returned
done.early:                  ; the function falls off its end: ret nil
.end
