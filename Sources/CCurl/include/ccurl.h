// libcurl for Swift.
//
// curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic, and Swift cannot call
// variadic C functions. Each wrapper below forwards one argument type; they carry curl's names so
// that a grep for "curl_easy_setopt" finds them. No logic lives here.
#ifndef CCURL_H
#define CCURL_H
#include <curl/curl.h>

typedef size_t (*ccurl_data_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);

CURLcode ccurl_easy_setopt_long(CURL *h, CURLoption o, long v);
CURLcode ccurl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v);
CURLcode ccurl_easy_setopt_ptr(CURL *h, CURLoption o, void *v);
CURLcode ccurl_easy_setopt_str(CURL *h, CURLoption o, const char *v);
CURLcode ccurl_easy_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v);
CURLcode ccurl_easy_setopt_fn(CURL *h, CURLoption o, ccurl_data_callback v);
CURLcode ccurl_easy_setopt_seekfn(CURL *h, CURLoption o, curl_seek_callback v);
CURLcode ccurl_easy_getinfo_long(CURL *h, CURLINFO i, long *v);
CURLcode ccurl_easy_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v);
CURLcode ccurl_easy_getinfo_str(CURL *h, CURLINFO i, char **v);
CURLMcode ccurl_multi_setopt_long(CURLM *m, CURLMoption o, long v);
#endif
