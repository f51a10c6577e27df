"""Boot a stock Debian kernel in QEMU and run one command inside it (the VM test tier's harness).

    python tests/kernel/vm.py [--timeout S] [--cwd DIR] -- COMMAND [ARG...]

The harness fetches and caches (in `$IPVSWM_KERNEL_CACHE`, default `~/.cache/ipvswm-kernel`) the
newest `linux-image-6.1.0-N-amd64-unsigned` package that apt knows (`apt-get download`, then
`dpkg-deb -x` and `depmod`), and builds a tiny busybox initramfs holding the modules for virtio-pci,
9p and overlay. The VM has no network device (`-nic none -nodefaults`): the host root is shared
read-only over virtio-9p under a tmpfs overlay, so every host path (the venv included) is visible
at the same place and nothing on the host changes; a second, writable 9p share carries the job
(command, working directory) in and its output and exit status out, and is mounted at its host
path inside the VM, so a command may leave artifacts there. The kernel's modules are bind-mounted on
`/lib/modules/VERSION`, so `modprobe ip_vs` works. The command's output is streamed to stdout, and
the harness exits with the command's exit status.

Acceleration: TCG (`-accel tcg,thread=multi -cpu max`) when `/sys/module/kvm_pvm` exists (a stock
kernel hangs under PVM's KVM), KVM when `/dev/kvm` is usable, else TCG.

A machine that cannot boot the VM (no qemu, no busybox-static, no kernel package) prints one
`skipped: WHY` line and exits 0 -- except with `CI=true`, where that is a failure (exit 2).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUEST_SCRIPT = HERE / "guest.sh"
# Modules the initramfs loads (with their dependencies) to reach the 9p shares.
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
PACKAGE_PATTERN = r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$"

INIT = r"""#!/bin/busybox sh
# Stage 1 (initramfs): load the 9p modules, mount the host root read-only under a tmpfs overlay,
# move the job share to its host path, then switch to the host root and run guest.sh.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r ko; do insmod "$ko" 2>/dev/null; done < /modules.order
# virtio-pci binds its devices asynchronously: wait until both 9p channels are there.
i=0
while [ "$(ls /sys/bus/virtio/drivers/9pnet_virtio 2>/dev/null | grep -c virtio)" -lt 2 ]; do
    i=$((i + 1)); [ $i -gt 600 ] && { echo "vm: 9p channels never appeared"; reboot -f; }
    sleep 0.05
done
opts=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /mnt/lower /mnt/rw /mnt/root /mnt/job
mount -t 9p -o $opts,cache=loose,ro hostroot /mnt/lower || { echo "vm: no host root"; reboot -f; }
mount -t 9p -o $opts job /mnt/job || { echo "vm: no job share"; reboot -f; }
mount -t tmpfs -o size=4g tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
layers=lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work
mount -t overlay -o $layers overlay /mnt/root
. /mnt/job/job.env
mkdir -p "/mnt/root$JOB_DIR"
mount --move /mnt/job "/mnt/root$JOB_DIR"
umount /proc /sys /dev 2>/dev/null
exec switch_root /mnt/root /bin/sh "$GUEST_SCRIPT" "$JOB_DIR"
"""


class Skip(Exception):
    """This machine cannot boot the VM; the message says why."""


def cache_dir() -> Path:
    """Where the kernel and initramfs are kept between runs."""
    default = Path.home() / ".cache" / "ipvswm-kernel"
    return Path(os.environ.get("IPVSWM_KERNEL_CACHE", default))


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Skip(f"{shlex.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return proc.stdout


def _search_packages() -> list[str]:
    out = _run(["apt-cache", "search", "--names-only", PACKAGE_PATTERN])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _newest_package() -> str:
    if shutil.which("apt-cache") is None:
        raise Skip("no apt-cache to find a Debian kernel package")
    names = _search_packages()
    if not names and os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"])  # a fresh machine may have no package lists yet
        names = _search_packages()
    if not names:
        raise Skip("apt knows no linux-image-6.1.0-*-amd64-unsigned (apt-get update? bookworm?)")

    def key(name: str) -> int:
        return int(name.split("-")[3])

    return max(names, key=key)


def fetch_kernel(cache: Path) -> tuple[str, Path]:
    """The kernel version and the extracted package root, downloading it on first use."""
    for done in sorted(cache.glob("kernel-*/.done")):
        root = done.parent / "root"
        return done.read_text().strip(), root
    for tool in ("apt-get", "dpkg-deb", "depmod"):
        if shutil.which(tool) is None:
            raise Skip(f"no {tool} (apt-get install kmod dpkg)")
    pkg = _newest_package()
    work = cache / f"kernel-{pkg}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # apt-get download drops privileges to _apt, which may not write the cache: fetch in /tmp.
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        _run(["apt-get", "download", "-q", pkg], cwd=Path(tmp))
        deb = next(Path(tmp).glob("*.deb"))
        _run(["dpkg-deb", "-x", str(deb), str(work / "root")])
    version = next((work / "root" / "lib" / "modules").iterdir()).name
    _run(["depmod", "-b", str(work / "root"), version])
    (work / ".done").write_text(version + "\n")
    return version, work / "root"


def build_initramfs(cache: Path, version: str, root: Path) -> Path:
    """A busybox initramfs that reaches the 9p shares (cached beside the kernel)."""
    image = cache / f"initramfs-{version}.cpio"
    if image.exists() and image.stat().st_mtime >= Path(__file__).stat().st_mtime:
        return image
    busybox = "/bin/busybox" if Path("/bin/busybox").exists() else shutil.which("busybox")
    if busybox is None or not _is_static(busybox):
        raise Skip("no static busybox (apt-get install busybox-static)")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for sub in ("bin", "proc", "sys", "dev", "mnt", "lib/modules"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox, base / "bin" / "busybox")
        order: list[str] = []
        for module in INITRAMFS_MODULES:
            deps = _run(["modprobe", "-d", str(root), "-S", version, "--show-depends", module])
            for line in deps.splitlines():
                parts = line.split()
                if len(parts) < 2 or parts[0] != "insmod":
                    continue
                name = Path(parts[1]).name
                if name not in order:
                    order.append(name)
                    shutil.copy2(parts[1], base / "lib" / "modules" / name)
        (base / "modules.order").write_text("".join(f"/lib/modules/{n}\n" for n in order))
        init = base / "init"
        init.write_text(INIT)
        init.chmod(0o755)
        files = sorted(str(p.relative_to(base)) for p in base.rglob("*"))
        tmp_image = image.with_suffix(".tmp")
        with tmp_image.open("wb") as out:
            subprocess.run(
                ["cpio", "-o", "-H", "newc", "--quiet"],
                input="\n".join(files).encode(),
                stdout=out,
                cwd=base,
                check=True,
            )
        tmp_image.replace(image)
    return image


def _is_static(binary: str) -> bool:
    # A dynamically linked binary names its ELF interpreter (ld-linux) near its start.
    return b"ld-linux" not in Path(binary).read_bytes()[:4096]


def accel_args() -> list[str]:
    """TCG on a PVM host (a stock kernel hangs under it), KVM where usable, else TCG."""
    if not Path("/sys/module/kvm_pvm").exists() and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


def qemu_command(kernel: Path, initramfs: Path, job: Path, memory: str = "2048") -> list[str]:
    """The qemu command line: no NIC, host root read-only, the job share read-write."""
    smp = str(min(2, os.cpu_count() or 1))
    return [
        "qemu-system-x86_64",
        "-nodefaults",
        "-nic",
        "none",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-m",
        memory,
        "-smp",
        smp,
        *accel_args(),
        "-kernel",
        str(kernel),
        "-initrd",
        str(initramfs),
        "-append",
        "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init no_timer_check",
        "-fsdev",
        "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device",
        "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev",
        f"local,id=job,path={job},security_model=none,multidevs=remap",
        "-device",
        "virtio-9p-pci,fsdev=job,mount_tag=job",
    ]


def prepare() -> tuple[str, Path, Path]:
    """Everything needed to boot: (kernel version, vmlinuz, initramfs); raises Skip."""
    if sys.platform != "linux":
        raise Skip("not Linux")
    if shutil.which("qemu-system-x86_64") is None:
        raise Skip("no qemu-system-x86_64 (apt-get install qemu-system-x86)")
    if shutil.which("cpio") is None:
        raise Skip("no cpio (apt-get install cpio)")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    version, root = fetch_kernel(cache)
    initramfs = build_initramfs(cache, version, root)
    return version, root / "boot" / f"vmlinuz-{version}", initramfs


GUEST_TMPFS = (Path("/tmp"), Path("/run"), Path("/dev/shm"))
"""Where guest.sh mounts a fresh tmpfs: the host's files there are hidden in the VM."""


def run_in_vm(command: list[str], cwd: Path, timeout: float) -> int:
    """Boot the VM, run `command` in `cwd`, stream its output; its exit status (or 124/125)."""
    version, kernel, initramfs = prepare()
    modules = kernel.parent.parent / "lib" / "modules" / version
    # Not under /tmp: the VM mounts a fresh tmpfs there.
    jobs = cache_dir() / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="job-", dir=jobs) as tmp:
        job = Path(tmp)
        env = {
            "JOB_DIR": str(job),
            "GUEST_SCRIPT": str(GUEST_SCRIPT),
            "JOB_CWD": str(cwd),
            "JOB_MODULES": str(modules),
            "JOB_KVER": version,
        }
        (job / "job.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
        (job / "cmd").write_text(shlex.join(command) + "\n")
        started = time.monotonic()
        proc = subprocess.Popen(qemu_command(kernel, initramfs, job), stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            print(f"vm: timed out after {timeout:.0f} s", flush=True)
            return 124
        status = job / "status"
        if not status.exists():
            print(f"vm: qemu exited {proc.returncode} without a job status", flush=True)
            return 125
        print(f"vm: done in {time.monotonic() - started:.1f} s", flush=True)
        return int(status.read_text().strip() or "125")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds before giving up")
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="working directory in the VM")
    parser.add_argument("--prepare", action="store_true", help="only fetch and build, then exit")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    try:
        if args.prepare:
            version, kernel, initramfs = prepare()
            print(f"vm: kernel {version} at {kernel}, initramfs {initramfs}")
            return 0
        if not args.command:
            parser.error("no command")
        cwd = args.cwd.resolve()
        hidden = next((d for d in GUEST_TMPFS if cwd == d or d in cwd.parents), None)
        if hidden is not None:
            print(
                f"vm: cannot run in {cwd}: the VM mounts a fresh tmpfs on {hidden}, so nothing"
                f" below it is visible inside; use a checkout outside {hidden}",
                flush=True,
            )
            return 2
        return run_in_vm(args.command, cwd, args.timeout)
    except Skip as why:
        if os.environ.get("CI") == "true":
            print(f"vm: cannot boot the VM in CI: {why}", flush=True)
            return 2
        print(f"skipped: {why}", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
