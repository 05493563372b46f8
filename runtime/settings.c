/* settings.c - process-wide library settings the embedding program chooses: where log lines go, thread confinement, and the scale of default deadlines. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "snapbox.h"

#include "kvm/confine.h"
#include "kvm/log.h"

/* The factor in thousandths, so that it is read and written atomically. */
#define SETTINGS_SCALE_ONE 1000u
#define SETTINGS_SCALE_MAX 1000.0   /* beyond this a "deadline" is no longer one */

static _Atomic unsigned settings_scale_milli = SETTINGS_SCALE_ONE;

void snapbox_set_log(snapbox_log_fn fn, void *arg)
{
	log_set(fn, arg);
}

void snapbox_set_confinement(bool on)
{
	confine_set_enabled(on);
}

int snapbox_set_time_scale(double factor)
{
	if (!isfinite(factor) || factor < 1.0 || factor > SETTINGS_SCALE_MAX)
		return -EINVAL;
	atomic_store(&settings_scale_milli, (unsigned)(factor * SETTINGS_SCALE_ONE + 0.999));
	return 0;
}

int snapbox_parse_time_scale(const char *s, double *out)
{
	char *end;
	double f;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	f = strtod(s, &end);
	if (errno || *end || !isfinite(f) || f < 1.0 || f > SETTINGS_SCALE_MAX)
		return -EINVAL;
	*out = f;
	return 0;
}

double snapbox_time_scale(void)
{
	return (double)atomic_load(&settings_scale_milli) / SETTINGS_SCALE_ONE;
}

unsigned snapbox_scaled_ms(unsigned ms)
{
	unsigned long long v = (unsigned long long)ms * atomic_load(&settings_scale_milli);

	v = (v + SETTINGS_SCALE_ONE - 1) / SETTINGS_SCALE_ONE;
	return v > UINT_MAX ? UINT_MAX : (unsigned)v;
}
