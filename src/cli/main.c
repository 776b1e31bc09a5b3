// intact — command-line client of libintact (commands in src/cli/commands.c).
#include "cli/common.h"

int main(int argc, char **argv) { return cli_main(argc - 1, argv + 1); }
