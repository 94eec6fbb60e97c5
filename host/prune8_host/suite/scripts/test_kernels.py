# The viper kernels (prune8.viper, prune8.viper_dense) against the portable ones they stand in for, on the
# extreme inputs their integer bounds are written for (docs/kernels.md): all -128
# weights, full capacity, the largest flows, multipliers and norms, sums at the edge of
# saturation, the longest dot products. Every output buffer and return value must be
# equal. Where the port cannot run viper (the WebAssembly VM) one case says so.
from array import array

import prune8
from prune8 import kernels

if "viper" not in kernels.available():
    print("CASE kernels-viper-unavailable PASS (this port runs the portable "
          "kernels only: %s)" % prune8.KERNELS)
else:
    from prune8 import viper, viper_dense
    PORTABLE = kernels.portable()
    VIPER = {}  # kernel name -> its viper twin, from the module kernels takes it from
    for mod_name, names in kernels.TABLE.items():
        twins = viper_dense if mod_name in kernels.VIPER_OF else viper
        for k in names:
            VIPER[k] = getattr(twins, k)

    # N: the longest sums (L1, squares, dot products, popcounts) run over 4096 values;
    # T: a per-weight scorer's tile, the esp32's capacity (its bounds are per value).
    # The script runs in the board's heap budget, counted from boot, so each buffer is
    # as long as its case needs and one kind's inputs are freed before the next's.
    N = 4096
    T = 2048
    seed = [99]

    def rnd(k):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x3FFFFFFF
        return (seed[0] >> 10) % k

    def both(name, make, call):
        """call(fn, *make()) with each kernel set on fresh copies of the same inputs:
        returns None when the results and every buffer agree. Read-only inputs are
        shared by the two calls (one copy on the heap: the script runs in the board's
        budget, counted from boot)."""
        a, b = make(), make()
        ra = call(PORTABLE[name], *a)
        rb = call(VIPER[name], *b)
        if ra != rb:
            return "returned %r, portable %r" % (rb, ra)
        for i in range(len(a)):
            if a[i] != b[i]:
                return "argument %d differs" % i
        return None

    def case(label, name, make, call):
        problem = both(name, make, call)
        print("CASE kernels-%s %s" % (label, "PASS" if problem is None else
                                      "FAIL " + problem))

    def weights(kind, n=N):
        w = bytearray(n)
        for i in range(n):
            w[i] = 0x80 if kind == "min" else (0x7F if kind == "max" else rnd(256))
        return w

    def filled(code, n, value):
        # array(code, range(n)) is allocated once at its final size: a list or a bytes
        # of n values first would be a second, bigger copy
        x = array(code, range(n))
        for i in range(n):
            x[i] = value(i) if callable(value) else value
        return x

    def h(n):
        return filled("h", n, 0)

    def i32(n, value=0):
        return filled("i", n, value)

    def per_kind(kind):
        # one kind's inputs are locals: freed before the next kind's are made
        w = weights(kind)
        case("magnitude-" + kind, "magnitude", lambda: (w, h(T)),
             lambda f, w, o: f(w, T, o))
        case("l2-" + kind, "l2", lambda: (w, h(T)), lambda f, w, o: f(w, T, o))
        a = weights(kind)
        case("gradient-weight-" + kind, "gradient", lambda: (w, a, h(T)),
             lambda f, w, a, o: f(w, a, T, 0, o, 0))
        case("gradient-column-" + kind, "gradient", lambda: (w, a, h(T)),
             lambda f, w, a, o: f(w, a, T, 4096, o, 17))
        a = None
        big = 128 * 4096  # the largest flow and L1 sum of a 4096-unit row or column
        rf, cf = i32(2, big), i32(T // 2, big)  # a tile of two rows of T / 2
        case("mincut-" + kind, "mincut_tile", lambda: (w, rf, cf, h(T)),
             lambda f, w, rf, cf, o: f(w, T, 0, 0, T // 2, rf, cf, o))
        rf = cf = None
        case("scaled-" + kind, "scaled_tile",
             lambda: (w, i32(2, lambda i: 1 if i else 32768), h(T)),
             lambda f, w, m, o: f(w, T, 0, 0, T // 2, m, o))
        case("wanda-" + kind, "wanda_tile", lambda: (w, i32(64, 32767), h(T)),
             lambda f, w, nm, o: f(w, T, 3, 64, nm, o))
        case("add-l1-" + kind, "add_l1", lambda: (w, i32(4), i32(1024)),
             lambda f, w, r, c: f(w, N, 0, 0, 1024, r, c))
        case("row-l1-" + kind, "row_l1", lambda: (w, i32(1)),
             lambda f, w, o: f(w, 1, N, o))
        case("col-l1-" + kind, "col_l1", lambda: (w, i32(64)),
             lambda f, w, o: f(w, 64, 64, o))
        case("blocks-" + kind, "block_l1", lambda: (w, i32(64)),
             lambda f, w, o: f(w, 64, 64, 8, 8, o))
        case("add-blocks-" + kind, "add_blocks", lambda: (w, i32(16)),
             lambda f, w, o: f(w, 7, 3000, 11, 64, 4, o))
        case("add-squares-" + kind, "add_squares",
             lambda: (i32(16, lambda i: 0x3FFFFF00 if i < 8 else 0), w),
             lambda f, acc, x: f(acc, x, N, 3, 16))
        xs = filled("h", N, lambda i: rnd(511) - 255 if kind == "random" else
                    (-255 if kind == "min" else 255))
        case("dot-" + kind, "dot", lambda: (w, xs), lambda f, w, x: f(w, 0, x, 0, N))
        xs = None
        keep = weights("random", N // 8)  # the same random mask bits for both sets
        case("apply-" + kind, "apply_bits", lambda: (bytearray(keep), bytearray(w)),
             lambda f, b, ww: f(b, ww, N - 3))
        case("popcount-" + kind, "popcount", lambda: (), lambda f: f(w, N - 3))
        case("zero-tile-blocks-" + kind, "zero_tile",
             lambda: (bytearray(w), bytearray(keep[:64])),
             lambda f, ww, b: f(ww, 0, 3000, 100, b, 0, 3, 64, 4, 8, 8))
    for kind in ("min", "max", "random"):
        per_kind(kind)
    sums = i32(64, lambda i: rnd(1 << 30) if i < 60 else (0, 1, 0x3FFFFFFF, 4)[i - 60])
    case("wanda-norms", "wanda_norms", lambda: (i32(64),),
         lambda f, nm: f(sums, 64, nm))
    acc = i32(64, lambda i: rnd(1 << 30) - (1 << 29) if i < 61 else
              (0, (1 << 29) + 5, -(1 << 29))[i - 61])
    m2 = bytearray([1 if r % 3 else 0 for r in range(64)])
    m1 = array("H", [rnd(1 << 15) for _ in range(64)])
    m0 = array("H", [rnd(1 << 15) for _ in range(64)])
    shifts = [rnd(62) - 31 for _ in range(64)]
    left = bytearray([s if s > 0 else 0 for s in shifts])
    right = bytearray([-s if s < 0 else 0 for s in shifts])
    for zp, lo in ((0, -128), (-7, -7), (100, 100)):
        case("requantize-%d" % zp, "requantize_rows", lambda: (bytearray(64),),
             lambda f, o: f(acc, m2, m1, m0, left, right, o, zp, lo))
    biases = i32(64, lambda i: rnd(1 << 30) - (1 << 29))
    xs64 = array("h", [rnd(511) - 255 for _ in range(64)])
    w64 = weights("random")
    case("dense-acc", "dense_acc", lambda: (i32(64),),
         lambda f, a: f(w64, xs64, biases, 64, 64, a))
    w64 = None
    case("random-long", "random", lambda: (h(T),), lambda f, o: f(T, 0x3FFFFFFF, o))
    scores16 = filled("h", T, lambda i: rnd(32768))
    units = i32(512, lambda i: rnd(1 << 30))
    for shift in (8, 0):
        case("radix16-shift-%d" % shift, "radix_count", lambda: (i32(256),),
             lambda f, hist: f(scores16, 0, T, hist, shift, 8, 3))
    for shift in (24, 16, 8, 0):
        case("radix32-shift-%d" % shift, "radix_count", lambda: (i32(256),),
             lambda f, hist: f(units, 0, 512, hist, shift, 24, 1))
    for pos in (0, 777, T - 4):
        case("radix16-select-%d" % pos, "radix", lambda: (i32(256),),
             lambda f, hist: f(scores16, T - 3, pos, hist, 8, 3))
    case("radix32-select", "radix", lambda: (i32(256),),
         lambda f, hist: f(units, 500, 250, hist, 24, 6))
    case("bubble16", "bubble", lambda: (h(64),), lambda f, t: f(scores16, 64, 31, t, 9, 0))
    case("bubble32", "bubble", lambda: (i32(64),), lambda f, t: f(units, 64, 63, t, 0, 1))
    case("count-below", "count_below", lambda: (), lambda f: f(scores16, 5, T - 5, 16384, 0))
    for start in (0, 5):
        case("fill-bits-%d" % start, "fill_bits",
             lambda: (bytearray(T // 8 + 8), i32(1)),
             lambda f, bits, c: f(bits, scores16, 3, start, T - 9, 16384, 40, 0, c))
    case("fill-bits-wide", "fill_bits", lambda: (bytearray(72), i32(1)),
         lambda f, bits, c: f(bits, units, 0, 3, 500, 1 << 29, 7, 1, c))
    case("nm-bits", "nm_bits", lambda: (bytearray(T // 8 + 8), i32(1)),
         lambda f, bits, c: f(bits, scores16, 0, 3, 2000, 2, 8, c))
