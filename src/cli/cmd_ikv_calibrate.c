// `intact ikv calibrate` (wired to src/ikv/calibrate.c when it lands).
#include <stdio.h>

#include "cli/ikv_calibrate_cmd.h"

int ikv_calibrate_cmd(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "intact ikv calibrate: not available in this build\n");
    return 1;
}
