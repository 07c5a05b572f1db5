; primes.asm — the primes below 60 by trial division, one per line.
    li r0, 2                ; candidate
next:
    li r1, 2                ; divisor
try:
    mul r2, r1, r1
    gt r3, r2, r0
    jnz r3, prime           ; no divisor up to sqrt(candidate)
    mod r2, r0, r1
    jz r2, composite
    add r1, r1, 1
    jmp try
prime:
    print r0
composite:
    add r0, r0, 1
    lt r3, r0, 60
    jnz r3, next
