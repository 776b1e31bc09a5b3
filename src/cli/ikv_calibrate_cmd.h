#ifndef IT_CLI_IKV_CMDS_H
#define IT_CLI_IKV_CMDS_H

int ikv_mse_cmd(int argc, char **argv);
int ikv_calibrate_cmd(int argc, char **argv);

#endif
