/* SPDX-License-Identifier: MIT */
/*
 * Polled e1000 driver for the multiboot build (contract in mb_e1000.h).
 * Register layout and descriptor formats from Intel's 8254x Software
 * Developer's Manual (legacy descriptors).
 */
#include "guest/arch/mb_e1000.h"

#include "guest/lib/rt.h"

#define E_NODEV (-19)
#define E_IO (-5)
#define E_INVAL (-22)
#define E_BUSY (-16)

/* registers (byte offsets in BAR0) */
#define R_CTRL 0x0000
#define R_STATUS 0x0008
#define R_IMC 0x00d8
#define R_RCTL 0x0100
#define R_TCTL 0x0400
#define R_TIPG 0x0410
#define R_RDBAL 0x2800
#define R_RDBAH 0x2804
#define R_RDLEN 0x2808
#define R_RDH 0x2810
#define R_RDT 0x2818
#define R_TDBAL 0x3800
#define R_TDBAH 0x3804
#define R_TDLEN 0x3808
#define R_TDH 0x3810
#define R_TDT 0x3818
#define R_MTA 0x5200
#define R_RAL0 0x5400
#define R_RAH0 0x5404

#define CTRL_ASDE (1u << 5)
#define CTRL_SLU (1u << 6)
#define RCTL_EN (1u << 1)
#define RCTL_BAM (1u << 15)     /* accept broadcast (ARP requests) */
#define RCTL_SECRC (1u << 26)   /* strip the Ethernet CRC */
#define TCTL_EN (1u << 1)
#define TCTL_PSP (1u << 3)
#define TCTL_CT (0x0fu << 4)
#define TCTL_COLD (0x40u << 12)
#define RAH_AV (1u << 31)

#define TXD_CMD_EOP 0x01
#define TXD_CMD_IFCS 0x02
#define TXD_CMD_RS 0x08
#define DESC_DD 0x01            /* status: descriptor done */
#define RXD_EOP 0x02

#define PCI_VENDOR_INTEL 0x8086
#define PCI_DEV_E1000 0x100e
#define PCI_CMD_MEM 0x0002
#define PCI_CMD_MASTER 0x0004

#define RX_N 32                 /* ring sizes: multiples of 8 (128 bytes) */
#define TX_N 16
#define BUF_SZ 2048             /* RCTL.BSIZE 00 */

struct rx_desc {
    uint64_t addr;
    uint16_t len;
    uint16_t csum;
    uint8_t status;
    uint8_t errors;
    uint16_t special;
};

struct tx_desc {
    uint64_t addr;
    uint16_t len;
    uint8_t cso;
    uint8_t cmd;
    uint8_t status;
    uint8_t css;
    uint16_t special;
};

_Static_assert(sizeof(struct rx_desc) == 16, "legacy rx descriptor");
_Static_assert(sizeof(struct tx_desc) == 16, "legacy tx descriptor");

/*
 * The NIC's state.  Rings and buffers are written by the device (DMA into
 * guest memory), so they are read through volatile pointers.
 */
static struct {
    volatile uint8_t *regs;     /* BAR0, NULL while down */
    struct rm_hc_net_info info;
    unsigned rx_next;           /* oldest descriptor the device may fill */
    unsigned tx_next;           /* next descriptor we fill */
    int tried;
    struct rx_desc rx[RX_N] __attribute__((aligned(128)));
    struct tx_desc tx[TX_N] __attribute__((aligned(128)));
    uint8_t rxbuf[RX_N][BUF_SZ] __attribute__((aligned(4096)));
    uint8_t txbuf[TX_N][BUF_SZ] __attribute__((aligned(4096)));
} nic;

static inline void barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

static uint32_t rd32(uint32_t reg)
{
    return *(volatile uint32_t *)(nic.regs + reg);
}

static void wr32(uint32_t reg, uint32_t v)
{
    barrier();
    *(volatile uint32_t *)(nic.regs + reg) = v;
    barrier();
}

/*
 * PCI configuration space of bus 0: through q35's ECAM (MMIO), or through
 * configuration mechanism #1 (ports 0xCF8/0xCFC, 32-bit: i440fx, QEMU's
 * `pc`; from CPL3 on PVM-based KVM each access traps to the #GP handler
 * of multiboot.S, slow but only done while probing).
 */
enum cfg_mode { CFG_ECAM, CFG_PORTS };

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "d"(port));   /* EF */
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;

    __asm__ volatile("inl %1, %0" : "=a"(v) : "d"(port));    /* ED */
    return v;
}

static volatile uint32_t *ecam32(unsigned dev, unsigned reg)
{
    return (volatile uint32_t *)(uintptr_t)(MB_E1000_ECAM_BASE +
                                            ((uint64_t)dev << 15) + reg);
}

static uint32_t cfg_rd(enum cfg_mode m, unsigned dev, unsigned reg)
{
    if (m == CFG_ECAM)
        return *ecam32(dev, reg);
    outl(0xcf8, 0x80000000u | dev << 11 | (reg & 0xfc));
    return inl(0xcfc);
}

static void cfg_wr(enum cfg_mode m, unsigned dev, unsigned reg, uint32_t v)
{
    if (m == CFG_ECAM) {
        *ecam32(dev, reg) = v;
        return;
    }
    outl(0xcf8, 0x80000000u | dev << 11 | (reg & 0xfc));
    outl(0xcfc, v);
}

/* "key=A.B.C.D" from the command line into *@out (network order);
 * 0 found, -ENODEV absent or malformed. */
static int cmdline_ipv4(const char *key, uint32_t *out)
{
    const char *c = rt_bootinfo->cmdline;
    size_t klen = strlen(key), i;

    for (i = 0; i < sizeof(rt_bootinfo->cmdline) && c[i]; i++) {
        const char *p;
        uint8_t b[4];
        int k;

        if ((i && c[i - 1] != ' ') || strncmp(c + i, key, klen) ||
            c[i + klen] != '=')
            continue;
        p = c + i + klen + 1;
        for (k = 0; k < 4; k++) {
            uint64_t v;

            if (!rt_parse_u64(&p, &v) || v > 255)
                return E_NODEV;
            b[k] = (uint8_t)v;
            if (k < 3 && *p++ != '.')
                return E_NODEV;
        }
        if (*p && *p != ' ')
            return E_NODEV;
        memcpy(out, b, 4);
        return 0;
    }
    return E_NODEV;
}

/* Bus 0's device number of the e1000 through @m, or -ENODEV. */
static int find_device(enum cfg_mode m)
{
    unsigned dev;

    for (dev = 0; dev < 32; dev++) {
        uint32_t id = cfg_rd(m, dev, 0);

        if ((id & 0xffff) == PCI_VENDOR_INTEL && id >> 16 == PCI_DEV_E1000)
            return (int)dev;
    }
    return E_NODEV;
}

int mb_e1000_init(void)
{
    uint32_t bar, cmd, ral, rah;
    enum cfg_mode mode;
    unsigned i;
    int dev;

    if (nic.regs)
        return 0;
    if (nic.tried)
        return E_NODEV;
    nic.tried = 1;
    memset(&nic.info, 0, sizeof(nic.info));
    if (cmdline_ipv4("ip", &nic.info.ipv4))
        return E_NODEV;
    if (cmdline_ipv4("netmask", &nic.info.netmask))
        nic.info.netmask = 0x00ffffff;   /* 255.255.255.0, network order */
    if (cmdline_ipv4("gateway", &nic.info.gateway))
        nic.info.gateway = 0;
    nic.info.mtu = 1500;
    mode = CFG_ECAM;
    dev = find_device(mode);
    if (dev < 0) {
        mode = CFG_PORTS;
        dev = find_device(mode);
    }
    if (dev < 0) {
        rt_printf("remus-guest: e1000: no 8086:100e on PCI bus 0 (ECAM at "
                  "0x%lx, nor ports 0xcf8)\n", (uint64_t)MB_E1000_ECAM_BASE);
        return dev;
    }
    bar = cfg_rd(mode, (unsigned)dev, 0x10);
    if ((bar & 0x7) != 0 || (bar & ~0xfu) == 0) {
        rt_printf("remus-guest: e1000: BAR0 0x%x is not a 32-bit memory "
                  "BAR\n", bar);
        return E_IO;
    }
    cmd = cfg_rd(mode, (unsigned)dev, 0x04);
    cfg_wr(mode, (unsigned)dev, 0x04,
           (cmd & 0xffff) | PCI_CMD_MEM | PCI_CMD_MASTER);
    nic.regs = (volatile uint8_t *)(uintptr_t)(bar & ~0xfu);

    wr32(R_IMC, 0xffffffffu);           /* no interrupts: we poll */
    wr32(R_CTRL, rd32(R_CTRL) | CTRL_SLU | CTRL_ASDE);
    ral = rd32(R_RAL0);
    rah = rd32(R_RAH0);
    for (i = 0; i < 4; i++)
        nic.info.mac[i] = (uint8_t)(ral >> (8 * i));
    nic.info.mac[4] = (uint8_t)rah;
    nic.info.mac[5] = (uint8_t)(rah >> 8);
    wr32(R_RAH0, rah | RAH_AV);
    for (i = 0; i < 128; i++)
        wr32(R_MTA + 4 * i, 0);

    for (i = 0; i < RX_N; i++) {
        nic.rx[i].addr = (uint64_t)(uintptr_t)nic.rxbuf[i];
        nic.rx[i].status = 0;
    }
    wr32(R_RDBAL, (uint32_t)(uintptr_t)nic.rx);
    wr32(R_RDBAH, (uint32_t)((uint64_t)(uintptr_t)nic.rx >> 32));
    wr32(R_RDLEN, sizeof(nic.rx));
    wr32(R_RDH, 0);
    wr32(R_RDT, RX_N - 1);              /* all but one owned by the device */
    nic.rx_next = 0;
    wr32(R_RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);

    for (i = 0; i < TX_N; i++) {
        nic.tx[i].addr = (uint64_t)(uintptr_t)nic.txbuf[i];
        nic.tx[i].cmd = 0;
        nic.tx[i].status = DESC_DD;     /* free */
    }
    wr32(R_TDBAL, (uint32_t)(uintptr_t)nic.tx);
    wr32(R_TDBAH, (uint32_t)((uint64_t)(uintptr_t)nic.tx >> 32));
    wr32(R_TDLEN, sizeof(nic.tx));
    wr32(R_TDH, 0);
    wr32(R_TDT, 0);
    nic.tx_next = 0;
    wr32(R_TIPG, 10 | 10u << 10 | 10u << 20);
    wr32(R_TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);

    rt_printf("remus-guest: e1000 at 00:%02x.0 (%s), regs 0x%x, mac "
              "%02x:%02x:%02x:%02x:%02x:%02x, status 0x%x\n", (unsigned)dev,
              mode == CFG_ECAM ? "ecam" : "ports", bar & ~0xfu, nic.info.mac[0], nic.info.mac[1], nic.info.mac[2],
              nic.info.mac[3], nic.info.mac[4], nic.info.mac[5],
              rd32(R_STATUS));
    return 0;
}

int mb_e1000_info(struct rm_hc_net_info *ni)
{
    if (!nic.regs)
        return E_NODEV;
    *ni = nic.info;
    return 0;
}

int mb_e1000_rx_pending(void)
{
    if (!nic.regs)
        return 0;
    return (((volatile struct rx_desc *)&nic.rx[nic.rx_next])->status &
            DESC_DD) != 0;
}

int mb_e1000_read(void *buf, size_t cap, size_t *len)
{
    volatile struct rx_desc *d;
    unsigned i;
    uint8_t st;
    size_t n;
    int drop;

    if (!nic.regs)
        return E_NODEV;
    for (;;) {
        i = nic.rx_next;
        d = &nic.rx[i];
        st = d->status;
        if (!(st & DESC_DD))
            return 1;
        barrier();
        n = d->len;
        /* A frame that spans descriptors (not expected with 2 KiB buffers
         * and a 1514-byte MTU) or has errors, or does not fit, is dropped
         * piece by piece. */
        drop = !(st & RXD_EOP) || d->errors || n > cap || n > BUF_SZ;
        if (!drop) {
            memcpy(buf, nic.rxbuf[i], n);
            *len = n;
        }
        d->status = 0;
        nic.rx_next = (i + 1) % RX_N;
        wr32(R_RDT, i);                 /* hand the descriptor back */
        if (!drop)
            return 0;
    }
}

int mb_e1000_write(const void *buf, size_t len)
{
    volatile struct tx_desc *d;
    unsigned i, spins;

    if (!nic.regs)
        return E_NODEV;
    if (len < 14 || len > 1514)
        return E_INVAL;
    i = nic.tx_next;
    d = &nic.tx[i];
    /* QEMU sends during the TDT write, so the descriptor is normally done
     * already; a real device may need a moment. */
    for (spins = 0; !(d->status & DESC_DD); spins++) {
        if (spins > 1000000)
            return E_BUSY;
        cpu_relax();
    }
    memcpy(nic.txbuf[i], buf, len);
    d->len = (uint16_t)len;
    d->cso = 0;
    d->css = 0;
    d->special = 0;
    d->cmd = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
    d->status = 0;
    nic.tx_next = (i + 1) % TX_N;
    wr32(R_TDT, nic.tx_next);
    return 0;
}
