/* unit_settings.c - the library's deadline factor: parsing, limits, rounding, and what a refused value leaves. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>

#include "snapbox.h"

Test(settings, time_scale_defaults_to_one)
{
	cr_assert_eq(snapbox_time_scale(), 1.0);
	cr_assert_eq(snapbox_scaled_ms(5000), 5000);
	cr_assert_eq(snapbox_scaled_ms(0), 0);
}

Test(settings, time_scale_multiplies_and_rounds_up)
{
	cr_assert_eq(snapbox_set_time_scale(2.5), 0);
	cr_assert_eq(snapbox_scaled_ms(5000), 12500);
	cr_assert_eq(snapbox_scaled_ms(1), 3, "2.5 ms rounds up");
	cr_assert_eq(snapbox_set_time_scale(1000), 0);
	cr_assert_eq(snapbox_scaled_ms(UINT_MAX), UINT_MAX, "capped, not wrapped");
}

Test(settings, bad_factors_are_refused_and_change_nothing)
{
	static const char *const bad[] = { "", "0", "0.5", "-2", "abc", "3x", "1001", "nan", "inf", "1e9" };
	double f = 0;

	cr_assert_eq(snapbox_set_time_scale(3), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(snapbox_parse_time_scale(bad[i], &f), -EINVAL, "'%s' accepted", bad[i]);
	cr_assert_eq(snapbox_parse_time_scale(NULL, &f), -EINVAL);
	cr_assert_eq(snapbox_set_time_scale(0.99), -EINVAL);
	cr_assert_eq(snapbox_set_time_scale(1.0 / 0.0), -EINVAL);
	cr_assert_eq(snapbox_scaled_ms(1000), 3000, "a refused factor replaced the good one");
	cr_assert_eq(snapbox_parse_time_scale("4.25", &f), 0);
	cr_assert_eq(f, 4.25);
	cr_assert_eq(snapbox_parse_time_scale("1", &f), 0);
	cr_assert_eq(f, 1.0);
}
