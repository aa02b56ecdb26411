/* The native core of the CSV record counter: quote-aware record counting of the body.
 *
 * It counts exactly what functions/csv_count/scanner.py's pure-Python reference
 * counts, byte for byte; tests/unit/test_native_scan.py holds the two against each
 * other. Per byte, outside quotes:
 *
 *   LF     ends a record; it is counted unless the record is blank (nothing, or a
 *          lone CR, since the previous record end)
 *   CR     data, except that a CR alone before the LF leaves the record blank
 *   quote  opens a quoted field (quote parity: also inside an unquoted field);
 *          the record is then not blank
 *   other  data: the record is not blank
 *
 * Inside quotes only a quote matters: it closes the field. A quote that opens a
 * field right after a closing one (the second half of an escaped "") reopens the
 * same field; any other opening quote is where the field in progress opened, the
 * offset an unterminated quote is reported at.
 *
 * The state carried between calls is the caller's: in_quotes, the record state
 * (0 nothing yet, 1 a lone CR, 2 data; 2 whenever inside quotes), whether the
 * previous byte was a quote, and where the open field opened.
 *
 * How it is fast (simdjson's technique for strings): per 64-byte block, one bit per
 * byte for quotes and one for LFs; the prefix XOR of the quote bits (a carry-less
 * multiplication by all ones) marks the bytes inside quotes. LFs outside quotes,
 * less those right after an LF or after LF CR (blank records), are the records
 * ended; a popcount counts them. CR bits are only computed for a block where an LF
 * follows another within two bytes, which data without blank or one-byte lines
 * never has. Where the field in progress opened is not tracked per block (that cost
 * a third of the speed): the forward loop notes the last block with a quote, and the
 * last real opening quote is searched backward from there, once per call; it is
 * rarely more than a block away. No other branch depends on the data (GCC makes a
 * mispredicted branch of `c ? a : b` where masks make it a select). The bits come
 * from AVX2 compares where the CPU has AVX2 (detected at run time, so the module is
 * built for the baseline of any x86-64), else from a portable 64-bit SWAR version of
 * the same; the last partial block goes byte by byte. Both prefetch 8 KiB ahead:
 * without it a scan of data not in cache ran at half the memory bandwidth. The scan
 * releases the GIL.
 *
 * Measured on the 2-core Xeon this was written on, 1 MiB chunks of the bench's CSV
 * (tests/bench/bench_scanner.py), best of repeated runs on a noisy shared machine:
 * AVX2 ~18 GB/s in cache, 14-16 GB/s on a 30 MB document, 7-10 GB/s from DRAM
 * (a bare AVX2 LF count makes 9-12 there); the portable kernel ~3 GB/s; byte by byte
 * ~0.9 GB/s.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(SCAN_NO_AVX2) /* -D to test */
#define HAVE_AVX2_KERNEL 1
#include <immintrin.h>
#else
#define HAVE_AVX2_KERNEL 0
#endif

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ALWAYS_INLINE inline
#define UNLIKELY(x) (x)
#endif

enum { RECORD_EMPTY = 0, RECORD_CR = 1, RECORD_TEXT = 2 };

/* Below this many bytes the scan keeps the GIL: releasing it costs more. */
#define RELEASE_GIL_FROM 16384

typedef struct {
    uint64_t rows;    /* records ended so far */
    int64_t open_at;  /* stream offset of the quote that opened the field in progress */
    int in_quotes;
    int record;       /* RECORD_*: what the record in progress holds, outside quotes */
    int after_quote;  /* the previous byte was a quote */
} byte_state;

typedef struct {
    uint64_t inq;       /* all ones while inside quotes, before the next byte */
    uint64_t empty;     /* 1: the previous byte is an LF (outside quotes: record EMPTY) */
    uint64_t cr;        /* 1: the previous bytes are LF CR (outside quotes: record CR) */
    uint64_t prevq;     /* 1: the previous byte is a quote */
    uint64_t rows;
} bit_state;

static ALWAYS_INLINE int
popcount64(uint64_t x)
{
#if defined(__GNUC__)
    return __builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
#endif
}

/* Index of the highest set bit of x (x != 0). */
static ALWAYS_INLINE int
high_bit64(uint64_t x)
{
#if defined(__GNUC__)
    return 63 - __builtin_clzll(x);
#else
    int i = 0;
    while (x >>= 1) {
        i++;
    }
    return i;
#endif
}

static ALWAYS_INLINE uint64_t
prefix_xor_portable(uint64_t x)
{
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}

/* One 64-byte block at `b`, given its quote and LF bits (bit i is byte i) and the
 * prefix XOR of its quote bits; `cr_bits` gives its CR bits when they matter.
 *
 * Bits of bytes inside quotes may be set in `empty`, `lone_cr` and `blank` (an LF
 * inside quotes), but only where the next byte is inside too: there is no quote
 * between. So they never reach an LF outside quotes, the only bytes they mask. */
static ALWAYS_INLINE void
block(bit_state *s, uint64_t q, uint64_t lf, uint64_t qx, const uint8_t *b,
      uint64_t (*cr_bits)(const uint8_t *))
{
    /* Inside quotes, counting an opening quote in and a closing one out. */
    uint64_t inside = qx ^ s->inq;
    /* Before byte i the record is EMPTY: byte i-1 is an LF. */
    uint64_t empty = (lf << 1) | s->empty;
    uint64_t blank = empty | s->cr;
    uint64_t lone_cr = 0;
    /* A CR where the record is EMPTY leaves it blank (CR). That matters only for an
     * LF two bytes after a record end, or for the state after the block: rare. */
    if (UNLIKELY((lf & (empty << 1)) | (empty >> 63))) {
        lone_cr = cr_bits(b) & empty;
        blank |= lone_cr << 1;
    }
    s->rows += (uint64_t)popcount64(lf & ~inside & ~blank);
    s->inq = (uint64_t)((int64_t)inside >> 63);
    s->empty = lf >> 63;
    s->cr = lone_cr >> 63;
    s->prevq = q >> 63;
}

static void
to_bits(const byte_state *b, bit_state *s)
{
    s->inq = b->in_quotes ? ~(uint64_t)0 : 0;
    s->empty = !b->in_quotes && b->record == RECORD_EMPTY;
    s->cr = !b->in_quotes && b->record == RECORD_CR;
    s->prevq = b->after_quote != 0;
    s->rows = b->rows;
}

static void
from_bits(const bit_state *s, byte_state *b)
{
    b->in_quotes = s->inq != 0;
    b->record = b->in_quotes ? RECORD_TEXT
                : s->empty   ? RECORD_EMPTY
                : s->cr      ? RECORD_CR
                             : RECORD_TEXT;
    b->after_quote = s->prevq != 0;
    b->rows = s->rows;
}

static void scan_bytes(const uint8_t *p, size_t n, int64_t offset, byte_state *st);

/* The real opening quotes of a block (openings not right after a quote, i.e. not
 * the reopening half of ""), given its quote bits, their prefix XOR, the quote state
 * before it and whether the byte before it is a quote. */
static ALWAYS_INLINE uint64_t
real_openings(uint64_t q, uint64_t qx, uint64_t inq_before, uint64_t prevq)
{
    return q & (qx ^ inq_before) & ~((q << 1) | prevq);
}

typedef struct {
    uint64_t q, lf;
} masks;

/* The block kernels' driver, inlined into each with its own bit extraction: 64-byte
 * blocks forward, counting; then where the last real opening quote is, searched
 * backward from the last block that has a quote (the forward loop only notes which
 * block that is: tracking openings there cost a third of the speed); then the tail
 * byte by byte. */
static ALWAYS_INLINE void
scan_blocks(const uint8_t *p, size_t n, int64_t offset, byte_state *st,
            masks (*masks_of)(const uint8_t *), uint64_t (*quotes_of)(const uint8_t *),
            uint64_t (*crs_of)(const uint8_t *), uint64_t (*prefix_xor)(uint64_t))
{
    size_t blocks = n / 64;
    size_t quoted = 0; /* 1 + the index of the last block with a quote; 0: none */
    uint64_t prevq0 = st->after_quote != 0;
    bit_state s;
    to_bits(st, &s);
    for (size_t k = 0; k < blocks; k++) {
        const uint8_t *b = p + 64 * k;
#if defined(__GNUC__)
        /* Harmless past the end: a prefetch never faults. */
        __builtin_prefetch((const void *)((uintptr_t)b + 8192));
#endif
        masks m = masks_of(b);
        block(&s, m.q, m.lf, prefix_xor(m.q), b, crs_of);
        /* A select without a branch: GCC made a mispredicted branch of ?: here. */
        uint64_t has = (uint64_t)(m.q == 0) - 1;
        quoted = (size_t)(((uint64_t)(k + 1) & has) | ((uint64_t)quoted & ~has));
    }
    from_bits(&s, st);
    /* No quote after block quoted-1: the state after it is the state after all. */
    uint64_t inq = s.inq;
    for (size_t k = quoted; k-- > 0;) {
        const uint8_t *b = p + 64 * k;
        uint64_t q = quotes_of(b);
        uint64_t before = inq ^ (0 - (uint64_t)(popcount64(q) & 1));
        uint64_t opening = real_openings(q, prefix_xor(q), before, k ? b[-1] == '"' : prevq0);
        if (opening) {
            st->open_at = offset + (int64_t)(64 * k) + high_bit64(opening);
            break;
        }
        inq = before;
    }
    scan_bytes(p + 64 * blocks, n - 64 * blocks, offset + (int64_t)(64 * blocks), st);
}

/* Byte by byte: the tail of the block kernels, and a kernel of its own for tests. */
static void
scan_bytes(const uint8_t *p, size_t n, int64_t offset, byte_state *st)
{
    uint64_t rows = st->rows;
    int64_t open_at = st->open_at;
    int in_quotes = st->in_quotes;
    int record = in_quotes ? RECORD_TEXT : st->record;
    int after_quote = st->after_quote;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_quotes) {
            if (c == '"') {
                in_quotes = 0;
            }
        }
        else if (c == '\n') {
            rows += record == RECORD_TEXT;
            record = RECORD_EMPTY;
        }
        else if (c == '\r') {
            record = record == RECORD_EMPTY ? RECORD_CR : RECORD_TEXT;
        }
        else {
            if (c == '"') {
                in_quotes = 1;
                if (!after_quote) {
                    open_at = offset + (int64_t)i;
                }
            }
            record = RECORD_TEXT;
        }
        after_quote = c == '"';
    }
    st->rows = rows;
    st->open_at = open_at;
    st->in_quotes = in_quotes;
    st->record = record;
    st->after_quote = after_quote;
}

/* The portable kernel: the bits of each 8 bytes by SWAR, 64 bytes per block. */

static ALWAYS_INLINE uint64_t
load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* One bit per byte of w equal to the byte that `pattern` repeats, in byte order. */
static ALWAYS_INLINE uint64_t
match8(uint64_t w, uint64_t pattern)
{
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    uint64_t t = w ^ pattern; /* zero bytes where w matches */
    /* 0x80 in exactly the zero bytes: no carry crosses a byte. */
    uint64_t high = ~(((t & low7) + low7) | t | low7);
    /* Gather the eight high bits into the top byte, byte k to bit 56 + k. */
    return ((high >> 7) * 0x0102040810204080ULL) >> 56;
}

static ALWAYS_INLINE uint64_t
match64_portable(const uint8_t *b, uint64_t pattern)
{
    uint64_t bits = 0;
    for (int j = 0; j < 8; j++) {
        bits |= match8(load64(b + 8 * j), pattern) << (8 * j);
    }
    return bits;
}

static uint64_t
quotes_portable(const uint8_t *b)
{
    return match64_portable(b, '"' * 0x0101010101010101ULL);
}

static uint64_t
crs_portable(const uint8_t *b)
{
    return match64_portable(b, '\r' * 0x0101010101010101ULL);
}

static masks
masks_portable(const uint8_t *b)
{
    return (masks){quotes_portable(b), match64_portable(b, '\n' * 0x0101010101010101ULL)};
}

static void
scan_portable(const uint8_t *p, size_t n, int64_t offset, byte_state *st)
{
    scan_blocks(p, n, offset, st, masks_portable, quotes_portable, crs_portable,
                prefix_xor_portable);
}

#if HAVE_AVX2_KERNEL

#define AVX2_TARGET __attribute__((target("avx2,pclmul,popcnt,bmi,bmi2")))

static AVX2_TARGET ALWAYS_INLINE uint64_t
match64(__m256i lo, __m256i hi, __m256i pattern)
{
    uint32_t a = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, pattern));
    uint32_t b = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, pattern));
    return (uint64_t)a | ((uint64_t)b << 32);
}

static AVX2_TARGET ALWAYS_INLINE uint64_t
bits_avx2(const uint8_t *b, char c)
{
    return match64(_mm256_loadu_si256((const __m256i *)b),
                   _mm256_loadu_si256((const __m256i *)(b + 32)), _mm256_set1_epi8(c));
}

static AVX2_TARGET uint64_t
quotes_avx2(const uint8_t *b)
{
    return bits_avx2(b, '"');
}

static AVX2_TARGET uint64_t
crs_avx2(const uint8_t *b)
{
    return bits_avx2(b, '\r');
}

static AVX2_TARGET masks
masks_avx2(const uint8_t *b)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)b);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(b + 32));
    return (masks){match64(lo, hi, _mm256_set1_epi8('"')),
                   match64(lo, hi, _mm256_set1_epi8('\n'))};
}

/* Prefix XOR: the low 64 bits of x times all ones, carry-less. */
static AVX2_TARGET uint64_t
prefix_xor_clmul(uint64_t x)
{
    return (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(
        _mm_set_epi64x(0, (long long)x), _mm_set1_epi8((char)0xFF), 0));
}

static AVX2_TARGET void
scan_avx2(const uint8_t *p, size_t n, int64_t offset, byte_state *st)
{
    scan_blocks(p, n, offset, st, masks_avx2, quotes_avx2, crs_avx2, prefix_xor_clmul);
}

static int
cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi") &&
           __builtin_cpu_supports("bmi2");
}

#endif /* HAVE_AVX2_KERNEL */

typedef void (*kernel_fn)(const uint8_t *, size_t, int64_t, byte_state *);

typedef struct {
    const char *name;
    kernel_fn fn;
} kernel;

/* Fastest first; "bytes" last. Filled in once, at the first module execution. */
static kernel kernels[3];
static int n_kernels;

static const kernel *
find_kernel(const char *name)
{
    for (int i = 0; i < n_kernels; i++) {
        if (strcmp(kernels[i].name, name) == 0) {
            return &kernels[i];
        }
    }
    return NULL;
}

PyDoc_STRVAR(scan_doc,
"scan(data, offset, in_quotes, record, after_quote, open_at, /, *, kernel=None)\n"
"--\n"
"\n"
"Count the records ending in ``data``, the CSV body bytes at stream ``offset``.\n"
"\n"
"The other arguments are the state after the bytes before ``data``: inside quotes;\n"
"the record in progress (0 nothing yet, 1 a lone CR, 2 data); whether the previous\n"
"byte was a quote; the stream offset of the quote that opened the field in progress.\n"
"Returns ``(records, in_quotes, record, after_quote, open_at)``: the records ended\n"
"in ``data`` and the state after it. ``kernel`` names one of ``KERNELS`` (default\n"
"``KERNEL``, the fastest this CPU runs). Releases the GIL on large buffers.");

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"", "", "", "", "", "", "kernel", NULL};
    Py_buffer view;
    long long offset, open_at;
    int in_quotes, record, after_quote;
    const char *name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*LpipL|$z:scan", keywords, &view,
                                     &offset, &in_quotes, &record, &after_quote, &open_at,
                                     &name)) {
        return NULL;
    }
    const kernel *k = name == NULL ? &kernels[0] : find_kernel(name);
    if (k == NULL) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "no kernel %s on this machine", name);
    }
    if (record < RECORD_EMPTY || record > RECORD_TEXT) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "record state must be 0, 1 or 2, not %d",
                            record);
    }
    if (offset < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "offset must not be negative");
        return NULL;
    }
    byte_state st = {0, (int64_t)open_at, in_quotes, record, after_quote};
    const uint8_t *p = (const uint8_t *)view.buf;
    size_t n = (size_t)view.len;
    if (n >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        k->fn(p, n, (int64_t)offset, &st);
        Py_END_ALLOW_THREADS
    }
    else {
        k->fn(p, n, (int64_t)offset, &st);
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(KNiNL)", (unsigned long long)st.rows,
                         PyBool_FromLong(st.in_quotes), st.record,
                         PyBool_FromLong(st.after_quote), (long long)st.open_at);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_VARARGS | METH_KEYWORDS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static void
init_kernels(void)
{
    if (n_kernels == 0) {
#if HAVE_AVX2_KERNEL
        if (cpu_has_avx2()) {
            kernels[n_kernels++] = (kernel){"avx2", scan_avx2};
        }
#endif
        kernels[n_kernels++] = (kernel){"portable", scan_portable};
        kernels[n_kernels++] = (kernel){"bytes", scan_bytes};
    }
}

static int
exec_module(PyObject *module)
{
    init_kernels();
    PyObject *names = PyTuple_New(n_kernels);
    if (names == NULL) {
        return -1;
    }
    for (int i = 0; i < n_kernels; i++) {
        PyObject *name = PyUnicode_FromString(kernels[i].name);
        if (name == NULL) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, i, name);
    }
    if (PyModule_AddObject(module, "KERNELS", names) < 0) {
        Py_DECREF(names);
        return -1;
    }
    if (PyModule_AddStringConstant(module, "KERNEL", kernels[0].name) < 0 ||
        PyModule_AddIntConstant(module, "RELEASE_GIL_FROM", RELEASE_GIL_FROM) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "functions.csv_count._scan",
    .m_doc = "Native core of the CSV record counter (see scanner.py for the reference).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModuleDef_Init(&module_def);
}
