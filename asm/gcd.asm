; gcd.asm — Euclid's algorithm, iterative and recursive, on a few pairs.
; expect: 6 6 / 1 1 / 21 21
    li r0, 48
    li r1, 18
    call r2, gcd_loop, r0, r1
    call r3, gcd_rec, r0, r1
    print r2, r3
    li r0, 17
    li r1, 5
    call r2, gcd_loop, r0, r1
    call r3, gcd_rec, r0, r1
    print r2, r3
    li r0, 1071
    li r1, 462
    call r2, gcd_loop, r0, r1
    call r3, gcd_rec, r0, r1
    print r2, r3

.func gcd_loop 2
again:
    jz r1, done
    mod r2, r0, r1
    mov r0, r1
    mov r1, r2
    jmp again
done:
    ret r0
.end

.func gcd_rec 2
    jnz r1, step
    ret r0
step:
    mod r2, r0, r1
    call r3, gcd_rec, r1, r2
    ret r3
.end
