#include <sys/ioctl.h>
#include "cioctl.h"

int cioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
