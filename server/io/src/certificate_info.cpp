#include "tern/server/io/certificate_info.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

namespace tern::server {

namespace {

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};

std::string subject_of(const X509* certificate) {
    const std::unique_ptr<BIO, BioFree> out(BIO_new(BIO_s_mem()));
    if (!out) return {};
    X509_NAME_print_ex(out.get(), X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long size = BIO_get_mem_data(out.get(), &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::string time_of(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
    char text[32];
    const auto length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(text, length);
}

}  // namespace

CertificateInfo read_certificate_info(const std::string& pem_path) {
    CertificateInfo info;
    const std::unique_ptr<BIO, BioFree> in(BIO_new_file(pem_path.c_str(), "r"));
    if (!in) {
        ERR_clear_error();
        info.error = "cannot open " + pem_path;
        return info;
    }
    const std::unique_ptr<X509, X509Free> certificate(
        PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
    if (!certificate) {
        ERR_clear_error();
        info.error = pem_path + " holds no PEM certificate";
        return info;
    }
    info.subject = subject_of(certificate.get());
    info.not_after = time_of(X509_get0_notAfter(certificate.get()));
    return info;
}

}  // namespace tern::server
