# ring: a 1,000,000-node ring of 2-element lists [value, next], the last
# pointing back to the first. Drop the references, then gc.collect().
import gc


def main():
    first = [0, None]
    prev = first
    for i in range(1, 1_000_000):
        node = [i, None]
        prev[1] = node
        prev = node
    prev[1] = first
    del first, prev, node
    print(gc.collect())


main()
