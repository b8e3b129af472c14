"""What the why-probes price at: sizes, sample counts and thresholds that the probes (``why/``)
and the report that reads their prices (``explain``) share. Nothing here measures."""

# A sample is a block as long as a cell's, of as many calls at most (a one-element op: ~1 us)
PROBE_SAMPLES = 15    # samples at least; the median is kept (7 swung by 2x on this VM)

# Small page faults a call from which a cell's fresh pages are priced by its own kernel time
# (4 MiB; at 1 to 4 us a page, a millisecond or more a call, most of the process's kernel
# time).
PRICED_FAULTS = 1000

# An op's size costs more than its traffic once the framework splits it over its intra-op
# thread pool (TensorFlow's eager add: 107 us per op at 92,682 elements, 248 us at 100,000, here).
# Sizes are priced from this many elements up (below, the extra is within the probe's noise:
# priced from 512, torch's 1,000-element adds came to 1.3x the cell with their dispatch), or
# from a backend's ``sized_from`` where it hands smaller ops to a thread; at most this many
# (a larger probe would leave the cache: a larger op is priced at this size).
SIZE_MIN_ELEMENTS = 1 << 12
SIZE_MAX_ELEMENTS = 1 << 17
SIZE_PROBES = 6        # the sizes with the most ops; the others take the nearest one's price

STREAM_ELEMENTS = 1 << 25   # as the machine's probe: 128 MiB per float32 vector, past most caches
