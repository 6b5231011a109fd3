// OpenSSL's libcrypto, for SHA-256 through EVP (measured here at ~900 MiB/s, the speed of
// swift-crypto, at no build cost: libcrypto is already linked through libcurl).
#include <openssl/evp.h>
