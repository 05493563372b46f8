/* unit_virtq.c - unit tests for the virtio-mmio transport and split virtqueues: registers, negotiation, interrupts, hostile rings, save/load. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <string.h>

#include "proto/le.h"
#include "tests/common_vdrv.h"

static struct vdrv d;

static void quiet(void)
{
	cr_redirect_stderr();
}

TestSuite(virtq, .init = quiet);

Test(virtq, identity_registers_and_config)
{
	vdrv_setup(&d, true);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_MAGIC), 0x74726976u);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_VERSION), 2u);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_DEVICE_ID), VSOCK_DEVICE_ID);
	vdrv_write(&d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	cr_assert(vdrv_read(&d, VIRTIO_MMIO_DEVICE_FEATURES) & 1u); /* VERSION_1 */
	vdrv_write(&d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert(vdrv_read(&d, VIRTIO_MMIO_DEVICE_FEATURES) & 1u << VIRTIO_F_EVENT_IDX);
	/* guest_cid, read as two 32-bit halves and as bytes */
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_CONFIG), VSOCK_GUEST_CID);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_CONFIG + 4), 0);
	uint8_t b = 0xff;
	vsock_mmio(&d.v, VIRTIO_MMIO_CONFIG, &b, 1, 1, false);
	cr_assert_eq(b, VSOCK_GUEST_CID);
	/* unaligned register access reads zero and changes nothing */
	uint8_t w[2] = { 0xff, 0xff };
	vsock_mmio(&d.v, VIRTIO_MMIO_STATUS, w, 2, 1, false);
	cr_assert_eq(w[0], 0);
	vdrv_teardown(&d);
}

Test(virtq, features_without_version_1_are_refused)
{
	vdrv_setup(&d, false);
	vdrv_write(&d, VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_STATUS), 0);
	vdrv_write(&d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vdrv_write(&d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vdrv_write(&d, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_F_EVENT_IDX);
	vdrv_write(&d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		   VIRTIO_STATUS_FEATURES_OK);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0);
	/* a feature never offered is refused too */
	vdrv_write(&d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vdrv_write(&d, VIRTIO_MMIO_DRIVER_FEATURES, 1u | 1u << 20);
	vdrv_write(&d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		   VIRTIO_STATUS_FEATURES_OK);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0);
	vdrv_teardown(&d);
}

Test(virtq, bad_queue_set_up_is_refused)
{
	vdrv_setup(&d, false);
	vdrv_write(&d, VIRTIO_MMIO_STATUS, 0);
	/* size not a power of two */
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_SEL, 0);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_NUM, 24);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x10000);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x11000);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_USED_LOW, 0x12000);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_READY, 1);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_QUEUE_READY), 0);
	vdrv_write(&d, VIRTIO_MMIO_STATUS, 0);
	/* used ring past the end of RAM (and wrapping) */
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_NUM, 16);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_USED_LOW, 0xfffffffcu);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_USED_HIGH, 0xffffffffu);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_READY, 1);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_QUEUE_READY), 0);
	cr_assert(vdrv_read(&d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* a queue index past the device's reads as absent */
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_SEL, 7);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	vdrv_teardown(&d);
}

Test(virtq, interrupts_are_edges_and_ack_clears_the_status)
{
	vdrv_setup(&d, false);
	vdrv_post(&d, VSOCK_Q_EVENT, 1, 4);
	vdrv_post(&d, VSOCK_Q_RX, 4, 4096);
	cr_assert_eq(d.irq_rises, 0);
	int h = vsock_connect(&d.v, 1024);
	cr_assert_geq(h, 0);
	cr_assert_eq(d.irq_rises, 1);
	cr_assert_eq(d.irq_level, 0, "an interrupt is an edge: the line is low again");
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_USED);
	vdrv_write(&d, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_USED);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* the next packet is a new edge whether or not the driver acknowledged */
	cr_assert_eq(vsock_send(&d.v, h, "x", 1), 0);
	cr_assert_eq(d.irq_rises, 2);
	vdrv_teardown(&d);
}

Test(virtq, event_idx_suppresses_interrupts_until_used_event)
{
	vdrv_setup(&d, true);
	/* used_event = 2: interrupt only when the used index passes 2 */
	uint8_t *a = gmem_ptr(&d.mem, vdrv_avail(VSOCK_Q_RX), 4 + 2 * VDRV_QSIZE + 2);
	le_put16(a + 4 + 2 * VDRV_QSIZE, 2);
	vdrv_post(&d, VSOCK_Q_RX, 8, 4096);
	int h = vsock_connect(&d.v, 1024); /* REQUEST: used idx 1, first interrupt always */
	cr_assert_geq(h, 0);
	cr_assert_eq(d.irq_rises, 1);
	vdrv_write(&d, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_USED);
	cr_assert_eq(vsock_send(&d.v, h, "a", 1), 0); /* used idx 2: not past 2 */
	cr_assert_eq(d.irq_rises, 1);
	cr_assert_eq(vsock_send(&d.v, h, "b", 1), 0); /* used idx 3: crossed */
	cr_assert_eq(d.irq_rises, 2);
	/* the device asked to be kicked at the next avail entry once RX ran dry */
	vdrv_teardown(&d);
}

/* Post one chain on TX whose first descriptor the test shapes, kick, and expect the device to stop. */
static void expect_broken(void (*shape)(struct vdrv *))
{
	vdrv_setup(&d, false);
	shape(&d);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_Q_TX);
	cr_assert(d.v.t.q[VSOCK_Q_TX].broken);
	cr_assert(vdrv_read(&d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert(vdrv_read(&d, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_CONFIG);
	/* the host side sees a failed device, not a hang */
	cr_assert_eq(vsock_connect(&d.v, 1024), -EIO);
	vdrv_teardown(&d);
}

static void shape_loop(struct vdrv *v)
{
	vdrv_set_desc(v, VSOCK_Q_TX, 0, vdrv_buf(VSOCK_Q_TX, 0), 44, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(v, VSOCK_Q_TX, 1, vdrv_buf(VSOCK_Q_TX, 1), 44, VIRTQ_DESC_F_NEXT, 0);
	vdrv_publish(v, VSOCK_Q_TX, 0, 1);
}

static void shape_next_out_of_range(struct vdrv *v)
{
	vdrv_set_desc(v, VSOCK_Q_TX, 0, vdrv_buf(VSOCK_Q_TX, 0), 44, VIRTQ_DESC_F_NEXT, VDRV_QSIZE);
	vdrv_publish(v, VSOCK_Q_TX, 0, 1);
}

static void shape_head_out_of_range(struct vdrv *v)
{
	vdrv_publish(v, VSOCK_Q_TX, 40000, 1);
}

static void shape_avail_jump(struct vdrv *v)
{
	vdrv_set_desc(v, VSOCK_Q_TX, 0, vdrv_buf(VSOCK_Q_TX, 0), 44, 0, 0);
	vdrv_publish(v, VSOCK_Q_TX, 0, VDRV_QSIZE + 1);
}

static void shape_outside_ram(struct vdrv *v)
{
	vdrv_set_desc(v, VSOCK_Q_TX, 0, (16u << 20) - 8, 44, 0, 0);
	vdrv_publish(v, VSOCK_Q_TX, 0, 1);
}

static void shape_wrapping(struct vdrv *v)
{
	vdrv_set_desc(v, VSOCK_Q_TX, 0, 0xffffffffffffff00ull, 0x200, 0, 0);
	vdrv_publish(v, VSOCK_Q_TX, 0, 1);
}

static void shape_indirect(struct vdrv *v)
{
	vdrv_set_desc(v, VSOCK_Q_TX, 0, vdrv_buf(VSOCK_Q_TX, 0), 64, VIRTQ_DESC_F_INDIRECT, 0);
	vdrv_publish(v, VSOCK_Q_TX, 0, 1);
}

static void shape_read_after_write(struct vdrv *v)
{
	vdrv_set_desc(v, VSOCK_Q_TX, 0, vdrv_buf(VSOCK_Q_TX, 0), 44,
		      VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(v, VSOCK_Q_TX, 1, vdrv_buf(VSOCK_Q_TX, 1), 44, 0, 0);
	vdrv_publish(v, VSOCK_Q_TX, 0, 1);
}

Test(virtq, descriptor_loop_stops_the_device) { expect_broken(shape_loop); }
Test(virtq, next_index_out_of_range_stops_the_device) { expect_broken(shape_next_out_of_range); }
Test(virtq, head_index_out_of_range_stops_the_device) { expect_broken(shape_head_out_of_range); }
Test(virtq, avail_index_jump_stops_the_device) { expect_broken(shape_avail_jump); }
Test(virtq, buffer_outside_ram_stops_the_device) { expect_broken(shape_outside_ram); }
Test(virtq, wrapping_buffer_stops_the_device) { expect_broken(shape_wrapping); }
Test(virtq, indirect_descriptor_stops_the_device) { expect_broken(shape_indirect); }
Test(virtq, readable_after_writable_stops_the_device) { expect_broken(shape_read_after_write); }

Test(virtq, queue_used_before_ready_is_ignored)
{
	vdrv_setup(&d, false);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_SEL, VSOCK_Q_TX);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_READY, 0);
	shape_loop(&d);
	vdrv_write(&d, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_Q_TX);
	cr_assert_not(d.v.t.q[VSOCK_Q_TX].broken);
	cr_assert_eq(d.v.pkts_rx, 0);
	/* notify storms on absent queues cost nothing and break nothing */
	for (int i = 0; i < 100000; i++)
		vdrv_write(&d, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)i);
	cr_assert_eq(vdrv_read(&d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, 0);
	vdrv_teardown(&d);
}

Test(virtq, save_load_round_trip)
{
	struct vdrv d2;
	struct sbuf a, b;

	vdrv_setup(&d, true);
	vdrv_post(&d, VSOCK_Q_RX, 5, 4096);
	vdrv_post(&d, VSOCK_Q_EVENT, 2, 4);
	sbuf_init(&a);
	cr_assert_eq(vsock_save(&d.v, &a), 0);

	/* a second device on a copy of the first one's RAM */
	vdrv_setup(&d2, false);
	vdrv_write(&d2, VIRTIO_MMIO_STATUS, 0);
	memcpy(d2.mem.host, d.mem.host, 8u << 20);
	struct sbuf_reader r;
	sbuf_reader_init(&r, a.data, a.len);
	cr_assert_eq(vsock_load(&d2.v, &r), 0);
	cr_assert_eq(d2.irq_rises, 0, "loading raises no interrupt");
	vsock_restored(&d2.v);
	sbuf_init(&b);
	/* no reset event: the event queue is untouched */
	cr_assert_eq(d2.v.t.q[VSOCK_Q_EVENT].next_used, 0);
	cr_assert_eq(d2.irq_rises, 0);
	cr_assert_eq(vsock_save(&d2.v, &b), 0);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(a.data, b.data, a.len), 0);
	sbuf_fini(&b);

	/* every truncation is refused */
	for (size_t n = 0; n < a.len; n++) {
		sbuf_reader_init(&r, a.data, n);
		cr_assert_eq(vsock_load(&d2.v, &r), -EPROTO, "truncated at %zu", n);
	}
	/* a queue pointed outside RAM is refused */
	uint8_t *bad = malloc(a.len);
	memcpy(bad, a.data, a.len);
	/* vsock version u8, transport: u8 version, 4+4+8+4+4+4+4 bytes, u8 nq, then queue 0: size u16, flags u8, desc u64 */
	size_t desc_off = 1 + 1 + 32 + 1 + 2 + 1;
	le_put64(bad + desc_off, 0x7fff0000ull << 8);
	sbuf_reader_init(&r, bad, a.len);
	cr_assert_eq(vsock_load(&d2.v, &r), -EPROTO);
	bad[0] = 9;
	sbuf_reader_init(&r, bad, a.len);
	cr_assert_eq(vsock_load(&d2.v, &r), -EPROTO);
	free(bad);
	sbuf_fini(&a);
	vdrv_teardown(&d2);
	vdrv_teardown(&d);
}

Test(virtq, a_tx_packet_posted_before_the_snapshot_is_replayed_on_restore)
{
	struct vdrv d2;
	struct sbuf a;
	struct sbuf_reader r;

	vdrv_setup(&d, true);
	vdrv_post(&d, VSOCK_Q_RX, 4, 4096);
	/* a guest REQUEST to an unknown port, published but not kicked */
	uint8_t *h = gmem_ptr(&d.mem, vdrv_buf(VSOCK_Q_TX, 0), 44);
	memset(h, 0, 44);
	le_put64(h, VSOCK_GUEST_CID);
	le_put64(h + 8, VSOCK_HOST_CID);
	le_put32(h + 16, 77);
	le_put32(h + 20, 4242);
	le_put16(h + 28, VSOCK_TYPE_STREAM);
	le_put16(h + 30, VSOCK_OP_REQUEST);
	vdrv_set_desc(&d, VSOCK_Q_TX, 0, vdrv_buf(VSOCK_Q_TX, 0), 44, 0, 0);
	vdrv_publish(&d, VSOCK_Q_TX, 0, 1);
	cr_assert(vsock_is_quiet(&d.v), "an unkicked TX packet lives in guest RAM: still quiet");
	sbuf_init(&a);
	cr_assert_eq(vsock_save(&d.v, &a), 0);

	vdrv_setup(&d2, false);
	vdrv_write(&d2, VIRTIO_MMIO_STATUS, 0);
	memcpy(d2.mem.host, d.mem.host, 8u << 20);
	d2.avail_idx[VSOCK_Q_RX] = d.avail_idx[VSOCK_Q_RX];
	sbuf_reader_init(&r, a.data, a.len);
	cr_assert_eq(vsock_load(&d2.v, &r), 0);
	cr_assert_eq(d2.v.pkts_rx, 0);
	vsock_restored(&d2.v);
	cr_assert_eq(d2.v.pkts_rx, 1, "the TX queue was replayed once");
	struct vdrv_pkt *p = malloc(sizeof(*p));
	cr_assert(vdrv_recv(&d2, p));
	cr_assert_eq(p->op, VSOCK_OP_RST, "no listener on 4242: refused");
	cr_assert_eq(p->dst_port, 77);
	free(p);
	sbuf_fini(&a);
	vdrv_teardown(&d2);
	vdrv_teardown(&d);
}
