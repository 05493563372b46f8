/* loader_elf.c - loads an x86-64 ELF kernel (vmlinux, probe guest) into guest RAM through libelf. */
#include <errno.h>
#include "kvm/log.h"
#include <gelf.h>
#include <stdio.h>
#include <string.h>

#include "kvm/gmem.h"
#include "proto/layout.h"
#include "kvm/loader.h"

/*
 * Check one PT_LOAD against the file and guest RAM. Returns 0 or the errno to
 * report; logs the reason.
 */
static int loader_elf_check_seg(const struct gmem *m, size_t idx, const GElf_Phdr *ph,
				size_t len)
{
	uint64_t file_end, mem_end;

	if (__builtin_add_overflow(ph->p_offset, ph->p_filesz, &file_end) || file_end > len) {
		log_msg("snapbox: kernel: ELF segment %zu file range [0x%llx,+0x%llx) "
			"reaches beyond the %zu-byte file\n", idx,
			(unsigned long long)ph->p_offset, (unsigned long long)ph->p_filesz, len);
		return -ENOEXEC;
	}
	if (ph->p_filesz > ph->p_memsz) {
		log_msg("snapbox: kernel: ELF segment %zu has p_filesz 0x%llx larger "
			"than p_memsz 0x%llx\n", idx, (unsigned long long)ph->p_filesz,
			(unsigned long long)ph->p_memsz);
		return -ENOEXEC;
	}
	if (ph->p_paddr < LAYOUT_HIMEM) {
		log_msg("snapbox: kernel: ELF segment %zu at 0x%llx lies below 1 MiB, "
			"where the boot structures live\n", idx, (unsigned long long)ph->p_paddr);
		return -ERANGE;
	}
	if (__builtin_add_overflow(ph->p_paddr, ph->p_memsz, &mem_end)) {
		log_msg("snapbox: kernel: ELF segment %zu [0x%llx,+0x%llx) wraps the "
			"address space\n", idx, (unsigned long long)ph->p_paddr,
			(unsigned long long)ph->p_memsz);
		return -ERANGE;
	}
	if (!gmem_ptr(m, ph->p_paddr, ph->p_memsz)) {
		log_msg("snapbox: kernel: ELF segment %zu [0x%llx,0x%llx) lies outside "
			"guest RAM (%llu MiB)\n", idx, (unsigned long long)ph->p_paddr,
			(unsigned long long)mem_end, (unsigned long long)(m->size >> 20));
		return -ERANGE;
	}
	return 0;
}

/*
 * Check the identification bytes and that a whole ELF header is present,
 * before libelf sees the image. Returns 0 or -ENOEXEC; logs the reason.
 */
static int loader_elf_check_ident(const uint8_t *img, size_t len)
{
	if (len < EI_NIDENT || memcmp(img, ELFMAG, SELFMAG) != 0) {
		log_msg("snapbox: kernel: ELF identification is missing or truncated "
			"(%zu bytes)\n", len);
		return -ENOEXEC;
	}
	if (img[EI_CLASS] != ELFCLASS64) {
		log_msg("snapbox: kernel: ELF class %u is not ELFCLASS64\n", img[EI_CLASS]);
		return -ENOEXEC;
	}
	if (img[EI_DATA] != ELFDATA2LSB) {
		log_msg("snapbox: kernel: ELF data encoding %u is not little-endian\n",
			img[EI_DATA]);
		return -ENOEXEC;
	}
	if (len < sizeof(Elf64_Ehdr)) {
		log_msg("snapbox: kernel: ELF header is truncated (%zu of %zu bytes)\n",
			len, sizeof(Elf64_Ehdr));
		return -ENOEXEC;
	}
	return 0;
}

/* Check the ELF header libelf parsed. Returns 0 or -ENOEXEC; logs the reason. */
static int loader_elf_check_ehdr(Elf *e, GElf_Ehdr *eh)
{
	if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, eh)) {
		log_msg("snapbox: kernel: ELF header unreadable: %s\n", elf_errmsg(-1));
		return -ENOEXEC;
	}
	if (eh->e_machine != EM_X86_64) {
		log_msg("snapbox: kernel: ELF machine %u is not EM_X86_64\n", eh->e_machine);
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC) {
		log_msg("snapbox: kernel: ELF type %u is not ET_EXEC\n", eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phnum && eh->e_phentsize != sizeof(Elf64_Phdr)) {
		log_msg("snapbox: kernel: ELF program header size %u is not %zu\n",
			eh->e_phentsize, sizeof(Elf64_Phdr));
		return -ENOEXEC;
	}
	return 0;
}

/*
 * Load an ELF kernel: every PT_LOAD to p_paddr, tail of p_memsz zeroed.
 * Returns 0, -ENOEXEC (malformed or not x86-64 ET_EXEC), -ERANGE (a segment
 * outside [LAYOUT_HIMEM, RAM size)) or -EINVAL; logs one line on error.
 */
int loader_load_elf(const struct gmem *m, const uint8_t *img, size_t len,
		    struct loader_kernel *out)
{
	GElf_Ehdr eh;
	GElf_Phdr ph;
	size_t phnum = 0, nload = 0;
	uint64_t start = UINT64_MAX, end = 0;
	bool entry_ok = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!m || !img) {
		log_msg("snapbox: kernel: no image or guest memory\n");
		return -EINVAL;
	}
	rc = loader_elf_check_ident(img, len);
	if (rc)
		return rc;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		log_msg("snapbox: kernel: libelf init failed: %s\n", elf_errmsg(-1));
		return -EINVAL;
	}
	/*
	 * libelf only reads an image opened with elf_memory (ELF_C_READ_MMAP
	 * semantics, no fd, native byte order), so casting away const is safe.
	 */
	Elf *e = elf_memory((char *)(uintptr_t)img, len);
	if (!e) {
		log_msg("snapbox: kernel: libelf cannot open the image: %s\n",
			elf_errmsg(-1));
		return -ENOEXEC;
	}
	rc = loader_elf_check_ehdr(e, &eh);
	if (rc)
		goto out_elf;
	if (elf_getphdrnum(e, &phnum) != 0) {
		log_msg("snapbox: kernel: ELF program headers unreadable: %s\n",
			elf_errmsg(-1));
		rc = -ENOEXEC;
		goto out_elf;
	}

	/* Validate every segment before copying any, so a refused image leaves RAM untouched. */
	for (size_t i = 0; i < phnum; i++) {
		if (!gelf_getphdr(e, (int)i, &ph)) {
			log_msg("snapbox: kernel: ELF program header %zu unreadable: %s\n",
				i, elf_errmsg(-1));
			rc = -ENOEXEC;
			goto out_elf;
		}
		if (ph.p_type != PT_LOAD)
			continue;
		rc = loader_elf_check_seg(m, i, &ph, len);
		if (rc)
			goto out_elf;
		nload++;
		if (ph.p_paddr < start)
			start = ph.p_paddr;
		if (ph.p_paddr + ph.p_memsz > end)
			end = ph.p_paddr + ph.p_memsz;
		if (eh.e_entry >= ph.p_paddr && eh.e_entry < ph.p_paddr + ph.p_memsz)
			entry_ok = true;
	}
	if (nload == 0) {
		log_msg("snapbox: kernel: ELF file has no PT_LOAD segment\n");
		rc = -ENOEXEC;
		goto out_elf;
	}
	if (!entry_ok) {
		log_msg("snapbox: kernel: ELF entry 0x%llx lies outside every loaded "
			"segment\n", (unsigned long long)eh.e_entry);
		rc = -ENOEXEC;
		goto out_elf;
	}

	for (size_t i = 0; i < phnum; i++) {
		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		uint8_t *dst = gmem_ptr(m, ph.p_paddr, ph.p_memsz);
		memcpy(dst, img + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}

	out->kind = LOADER_ELF;
	out->entry = eh.e_entry;
	out->start = start;
	out->end = end;
	out->has_hdr = false;
	rc = 0;
out_elf:
	elf_end(e);
	return rc;
}
