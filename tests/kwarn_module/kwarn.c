// The kernel-warning VM test's module (tests/vm_kwarn.rs): one WARN_ON
// in its init, so the kernel logs a WARNING splat when it is loaded.
#include <linux/module.h>
#include <linux/bug.h>

static int __init kwarn_init(void)
{
	WARN_ON(1);
	return 0;
}

static void __exit kwarn_exit(void)
{
}

module_init(kwarn_init);
module_exit(kwarn_exit);
MODULE_LICENSE("GPL");
