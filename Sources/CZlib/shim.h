/* zlib, for reading gzip-compressed data files (Debian ships miscfiles' tables as .gz).
 * inflateInit2 is a macro, which Swift cannot call; the inline wrapper below can.
 * Only Sources/HMSTCore/Support/Gzip.swift calls into this module. */
#include <zlib.h>

/* inflateInit2 with 16 + MAX_WBITS: a gzip header and trailer (CRC-32, length) are expected. */
static inline int czlib_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 16 + MAX_WBITS);
}
