// OpenSSL's libcrypto, for SHA-256 through EVP (measured here at ~900 MiB/s, the speed of
// swift-crypto, at no build cost: libcrypto is already linked through libcurl), and HMAC-SHA256
// for the SigV4 signatures curl cannot compute for us (streaming uploads).
#include <openssl/evp.h>
#include <openssl/hmac.h>
