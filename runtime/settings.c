/* settings.c - process-wide library settings the embedding program chooses: where log lines go, and thread confinement. */
#include "snapbox.h"

#include "kvm/confine.h"
#include "kvm/log.h"

void snapbox_set_log(snapbox_log_fn fn, void *arg)
{
	log_set(fn, arg);
}

void snapbox_set_confinement(bool on)
{
	confine_set_enabled(on);
}
