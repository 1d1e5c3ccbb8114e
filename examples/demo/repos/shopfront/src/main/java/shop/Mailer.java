package shop;

import java.util.Properties;

/** Order confirmations by mail. The settings below are for the staging server only. */
public class Mailer {
    static final String SMTP_HOST = "10.20.30.40";
    static final String SENDER = "orders@shopfront-example.com";
    static final String PASSWORD = "password=Sup3rS3cret!";

    public Properties settings() {
        Properties p = new Properties();
        p.setProperty("mail.smtp.host", SMTP_HOST);
        p.setProperty("mail.from", SENDER);
        p.setProperty("mail.smtp.port", "587");
        p.setProperty("mail.smtp.starttls.enable", "true");
        return p;
    }

    public String subject(String orderId) {
        return "Your order " + orderId + " is confirmed";
    }
}
