/*
 * phone_shim: thin C++ wrapper over libphonenumber's PhoneNumberUtil.
 * Every entry point catches all exceptions; nothing else lives here.
 */
#include "phone_shim.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

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
