#!/bin/sh
# Stage 2 of the VM (run by the initramfs after switch_root into the host root under an overlay):
# mount the pseudo filesystems, bind the kernel's modules, run the job's command in its working
# directory with its output on the console and in JOB_DIR/output, write JOB_DIR/status, power off.
JOB_DIR=$1
. "$JOB_DIR/job.env"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 IPVSWM_IN_VM=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns
mkdir -p "/lib/modules/$JOB_KVER"
mount --bind "$JOB_MODULES" "/lib/modules/$JOB_KVER"
hostname ipvswm-vm
ip link set lo up
cd "$JOB_CWD" || { echo 125 > "$JOB_DIR/status"; reboot -f; }
{
    sh "$JOB_DIR/cmd" 2>&1
    echo $? > "$JOB_DIR/status.tmp"
} | tee "$JOB_DIR/output"
sync
mv "$JOB_DIR/status.tmp" "$JOB_DIR/status"
sync
umount "$JOB_DIR" 2>/dev/null
dmesg -n 1 2>/dev/null
reboot -f >/dev/null 2>&1
