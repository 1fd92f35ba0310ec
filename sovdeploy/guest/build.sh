#!/bin/sh
# Build a tiny bootable disk: Debian's kernel, a busybox initramfs that reports to
# the serial console, syslinux on a FAT file system. Runs in a Debian 13 container.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends syslinux syslinux-common mtools dosfstools busybox-static cpio gzip >/dev/null
work=$(mktemp -d); cd "$work"
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
apt-get download -qq "$kpkg"
dpkg-deb -x ./*.deb kernel
mkdir -p root/bin root/proc root/sys root/dev
cp /bin/busybox root/bin/busybox
ln -s busybox root/bin/sh
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox echo "sovdeploy-guest: booted $(/bin/busybox uname -r)" > /dev/ttyS0
while :; do /bin/busybox sleep 3600; done
INIT
chmod 0755 root/init
(cd root && find . | cpio -o -H newc --quiet | gzip -9) > initrd.gz
cp kernel/boot/vmlinuz-* vmlinuz
printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  APPEND initrd=initrd.gz console=ttyS0,115200 quiet\n' > syslinux.cfg
size=$(( ($(stat -c %s vmlinuz) + $(stat -c %s initrd.gz)) / 1048576 + 8 ))
dd if=/dev/zero of=disk.raw bs=1M count="$size" status=none
mkfs.vfat -n SOVGUEST disk.raw >/dev/null
syslinux --install disk.raw
mcopy -i disk.raw vmlinuz initrd.gz syslinux.cfg ::
cp disk.raw /out/guest.raw
echo "$kpkg"
