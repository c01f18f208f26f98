# bcryptprimitives.dll for Wine 8 (Debian 12), which lacks it: Go 1.24 and
# later load it at start-up for ProcessPrng and stop without it. ProcessPrng
# (data, size) is answered by bcrypt's BCryptGenRandom with the system RNG,
# which Wine has. Built by scripts/wine-test.sh with binutils-mingw-w64:
#   as -o prng.o bcryptprimitives.s
#   dlltool -d bcrypt.def -l libbcrypt.a      (bcrypt.def: BCryptGenRandom)
#   ld --shared -e DllMain -o bcryptprimitives.dll exports.def prng.o libbcrypt.a
	.intel_syntax noprefix
	.text

# BOOL ProcessPrng(PBYTE data, SIZE_T size)
	.globl	ProcessPrng
ProcessPrng:
	sub	rsp, 40			# shadow space, keeps rsp 16-byte aligned
	mov	r8, rdx			# cbBuffer (Go asks for small amounts)
	mov	rdx, rcx		# pbBuffer
	xor	ecx, ecx		# hAlgorithm: none
	mov	r9d, 2			# BCRYPT_USE_SYSTEM_PREFERRED_RNG
	call	[rip + __imp_BCryptGenRandom]
	add	rsp, 40
	test	eax, eax		# STATUS_SUCCESS is 0
	sete	al
	movzx	eax, al			# TRUE on success
	ret

# BOOL DllMain(HINSTANCE, DWORD, LPVOID): nothing to set up.
	.globl	DllMain
DllMain:
	mov	eax, 1
	ret
