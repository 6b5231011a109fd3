// ioctl(2) for Swift.
//
// ioctl is variadic, and Swift cannot call variadic C functions. This wrapper forwards the one
// argument form mossaicfs uses (a pointer to a buffer); it keeps ioctl's name so that a grep for
// "ioctl" finds it. No logic lives here.
#ifndef CIOCTL_H
#define CIOCTL_H
int cioctl_ptr(int fd, unsigned long request, void *arg);
#endif
