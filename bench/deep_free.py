# deep_free: build a 1,000,000-node chain of 2-element lists [value, next],
# then drop the head: refcounting frees the whole chain at once (CPython's
# trashcan keeps the C stack flat).
def main():
    head = None
    for i in range(1_000_000):
        head = [i, head]
    v = head[0]
    head = None
    print(v)


main()
