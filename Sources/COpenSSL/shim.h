// OpenSSL's libcrypto, for SHA-256 through EVP (measured here at ~900 MiB/s, the speed of
// swift-crypto, at no build cost: libcrypto is already linked through libcurl), HMAC-SHA256
// for the SigV4 signatures curl cannot compute for us (streaming uploads), and encryption
// (ARCHITECTURE.md §10): AES-256-GCM and AES-256 through EVP, scrypt for passphrases,
// RAND_bytes for keys, salts and nonces.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
