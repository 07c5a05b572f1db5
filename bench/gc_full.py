# gc_full: 1,000,000 live tracked 2-element lists in a list, then 10 full
# gc.collect() calls that find nothing.
import gc


def main():
    lst = []
    for i in range(1_000_000):
        lst.append([i, None])
    total = 0
    for _ in range(10):
        total += gc.collect()
    print(len(lst), total)


main()
