#!/bin/sh
# Start or stop one sandbox virtual machine.
#
#   vm.sh start   boot it: a copy-on-write overlay of the image's disk, a tap port on
#                 the sandbox network's bridge (so the VM is a peer of the containers,
#                 at its own address), its identity passed in QEMU's fw_cfg; then wait
#                 until its SSH port answers
#   vm.sh stop    power it off and remove its overlay and tap
#
# Everything comes from the environment (terraform_data's local-exec sets it):
#   VM_NAME VM_DEPLOYMENT VM_STATE_DIR              always
#   VM_ADDRESS VM_PREFIX VM_GATEWAY VM_NETWORK      start
#   VM_IMAGE VM_KEYS VM_MEMORY VM_CPUS VM_ACCEL VM_BOOT_TIMEOUT
#   VM_BOOT       kernel: QEMU boots the image's kernel itself (quickest); disk: the
#                 disk's GRUB boots it, so the guest's own kernel command line applies
#                 and a reboot boots the guest again
#   VM_QEMU_ARGS  more QEMU arguments, one a line (an emulated IOMMU, an SR-IOV NIC)
set -eu

dir="$VM_STATE_DIR/$VM_DEPLOYMENT/$VM_NAME"
subnet="$VM_ADDRESS/$VM_PREFIX"
# Interface names are at most 15 characters: name the tap by a digest of its VM.
tap="svdvm$(printf '%s/%s' "$VM_DEPLOYMENT" "$VM_NAME" | sha256sum | cut -c1-8)"

stop() {
    if [ -f "$dir/qemu.pid" ]; then
        pid=$(cat "$dir/qemu.pid")
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-name $VM_NAME "; then
            kill "$pid"
            n=0
            while [ -d "/proc/$pid" ] && [ "$n" -lt 30 ]; do sleep 1; n=$((n + 1)); done
            [ ! -d "/proc/$pid" ] || kill -9 "$pid"
        fi
    fi
    ! ip link show "$tap" > /dev/null 2>&1 || ip link delete "$tap"
    nat -D 2> /dev/null || true
    # A bridge this script made (no container came) goes with the last VM on it.
    bridge=$(podman network inspect --format '{{.NetworkInterface}}' "$VM_NETWORK" 2> /dev/null || true)
    if [ -n "$bridge" ] && ip link show "$bridge" > /dev/null 2>&1 &&
        [ -z "$(ip -o link show master "$bridge")" ]; then
        ip link delete "$bridge"
    fi
    rm -rf "$dir"
}

# The VM's traffic to the outside is masqueraded like the containers', by rules of its
# own: netavark adds the network's rules only while a container is attached.
nat() {
    iptables "$1" FORWARD -s "$VM_ADDRESS" -m comment --comment "$tap" -j ACCEPT
    iptables "$1" FORWARD -d "$VM_ADDRESS" -m comment --comment "$tap" -j ACCEPT
    iptables -t nat "$1" POSTROUTING -s "$VM_ADDRESS" ! -d "$subnet" -m comment --comment "$tap" -j MASQUERADE
}

start() {
    stop
    mkdir -p "$dir"
    bridge=$(podman network inspect --format '{{.NetworkInterface}}' "$VM_NETWORK")
    # netavark makes the bridge when the first container joins; a VM may come first.
    if ! ip link show "$bridge" > /dev/null 2>&1; then
        ip link add "$bridge" type bridge
        ip address add "$VM_GATEWAY/$VM_PREFIX" dev "$bridge"
        ip link set "$bridge" up
    fi
    ip tuntap add dev "$tap" mode tap
    ip link set "$tap" master "$bridge" up
    nat -A
    # The host's resolver: the network's own (aardvark-dns) answers only while a
    # container is attached, and the VM needs no sandbox names.
    dns=$(awk '$1 == "nameserver" && $2 !~ /^127\./ { print $2; exit }' /etc/resolv.conf)
    image=$(readlink -f "$VM_IMAGE")
    qemu-img create -q -f qcow2 -F qcow2 -b "$image/disk.qcow2" "$dir/disk.qcow2"
    printf 'hostname=%s\naddress=%s/%s\ngateway=%s\ndns=%s\n' \
        "$VM_NAME" "$VM_ADDRESS" "$VM_PREFIX" "$VM_GATEWAY" "${dns:-$VM_GATEWAY}" > "$dir/seed"
    mac="52:54:00:$(printf '%s' "$tap" | sha256sum | sed 's/^\(..\)\(..\)\(..\).*/\1:\2:\3/')"
    # How it boots, then the extra arguments, as one argument list.
    set --
    if [ "${VM_BOOT:-kernel}" = kernel ]; then
        set -- -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -no-reboot \
            -append "root=LABEL=root rw console=ttyS0 net.ifnames=0 panic=-1"
    fi
    if [ -n "${VM_QEMU_ARGS:-}" ]; then
        while IFS= read -r arg; do
            [ -z "$arg" ] || set -- "$@" "$arg"
        done <<EOF
$VM_QEMU_ARGS
EOF
    fi
    qemu-system-x86_64 \
        -name "$VM_NAME" -machine q35 -accel "$VM_ACCEL" -cpu max \
        -smp "$VM_CPUS" -m "$VM_MEMORY" \
        -drive "file=$dir/disk.qcow2,if=virtio,format=qcow2,discard=unmap" \
        -netdev "tap,id=net0,ifname=$tap,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=net0,mac=$mac" \
        -object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 \
        -fw_cfg "name=opt/sovdeploy/seed,file=$dir/seed" \
        -fw_cfg "name=opt/sovdeploy/authorized_keys,file=$VM_KEYS" \
        -display none -monitor none -serial "file:$dir/console.log" \
        -daemonize -pidfile "$dir/qemu.pid" "$@"
    deadline=$(($(date +%s) + VM_BOOT_TIMEOUT))
    until timeout 2 bash -c "echo > /dev/tcp/$VM_ADDRESS/22" 2> /dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ] || [ ! -d "/proc/$(cat "$dir/qemu.pid")" ]; then
            echo "$VM_NAME: SSH did not answer within ${VM_BOOT_TIMEOUT}s; its console:" >&2
            tail -n 30 "$dir/console.log" >&2
            exit 1
        fi
        sleep 2
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
