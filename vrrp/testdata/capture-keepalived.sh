#!/bin/bash
# capture one advert from keepalived per config ($1 = name, $2 = config body)
set -e
mkdir -p /tmp/vcap
name=$1; conf=$2; filter=$3
ip netns add vcapA; ip netns add vcapB
ip link add vka type veth peer name vkb
ip link set vka netns vcapA; ip link set vkb netns vcapB
ip -n vcapA addr add 192.0.2.1/24 dev vka; ip -n vcapB addr add 192.0.2.2/24 dev vkb
ip -n vcapA addr add 2001:db8::1/64 dev vka nodad; ip -n vcapB addr add 2001:db8::2/64 dev vkb nodad
ip -n vcapA link set vka up; ip -n vcapB link set vkb up; ip -n vcapA link set lo up
echo "$conf" > /tmp/vcap/$name.conf
ip netns exec vcapB timeout 12 tcpdump -i vkb -U -c 40 -w /tmp/vcap/$name.pcap "$filter" &
sleep 1
ip netns exec vcapA timeout 8 keepalived --vrrp -n -l -D -f /tmp/vcap/$name.conf -p /tmp/vcap/$name.pid -r /tmp/vcap/$name.vpid > /tmp/vcap/$name.log 2>&1 || true
wait
ip netns del vcapA; ip netns del vcapB
