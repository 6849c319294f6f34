/*
 * phone_shim: thin C++ wrapper over libphonenumber's PhoneNumberUtil.
 * Every entry point catches all exceptions; nothing else lives here.
 */
#include "phone_shim.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cstdint>
#include <string>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

static const PhoneNumberUtil *shim_util(void)
{
    /* Function-local static: initialised once, thread-safe (C++11). */
    static const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
    return util;
}

extern "C" bool phone_shim_init(void)
{
    try {
        return shim_util() != nullptr;
    } catch (...) {
        return false;
    }
}

extern "C" bool phone_shim_valid(const char *number, size_t len, const char *default_region)
{
    if (number == nullptr || len == 0 || default_region == nullptr)
        return false;
    try {
        const PhoneNumberUtil *util = shim_util();
        if (util == nullptr)
            return false;
        PhoneNumber pn;
        std::string text(number, len);
        if (util->Parse(text, default_region, &pn) != PhoneNumberUtil::NO_PARSING_ERROR)
            return false;
        return util->IsValidNumber(pn);
    } catch (...) {
        return false;
    }
}

extern "C" bool phone_shim_valid_split(int country_code, const char *national, size_t len)
{
    if (national == nullptr || len == 0 || len > 17 || country_code <= 0 || country_code > 999)
        return false;
    try {
        const PhoneNumberUtil *util = shim_util();
        if (util == nullptr)
            return false;
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            if (national[i] < '0' || national[i] > '9')
                return false;
            v = v * 10 + (uint64_t)(national[i] - '0');
        }
        PhoneNumber pn;
        pn.set_country_code(country_code);
        pn.set_national_number(v);
        if (national[0] == '0') {
            int zeros = 1;
            while ((size_t)zeros < len - 1 && national[zeros] == '0')
                zeros++;
            pn.set_italian_leading_zero(true);
            if (zeros > 1)
                pn.set_number_of_leading_zeros(zeros);
        }
        return util->IsValidNumber(pn);
    } catch (...) {
        return false;
    }
}
